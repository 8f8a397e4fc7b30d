#!/usr/bin/env bash
# Exactly-once routing on a real Kafka: 200,000 changes flow while the router
# is killed with SIGKILL three times at random moments and restarted, and a
# second router instance joins the group (the two share the partitions, as
# `exbus lag` shows) and leaves it again. At the end the subscriber's table
# equals the provider's, and an independent reader (eos_check.py: Python
# confluent_kafka, read_committed) finds every change exactly once on the
# delivery topic: no event id twice, none missing.
source "$(dirname "$0")/lib.sh"
real_broker_only "Kafka transactions: the embedded broker writes no transaction markers and keeps no transactional offsets"
N=${EXB_EOS_ROWS:-160000} # rows inserted; plus N/4 updates = 200,000 changes by default
CHANGES=$((N + N / 4))
RES=370600-GA-0001

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource $RES \
        --items id_number,name,gender,birth_date,address,region,phone,updated_at --purpose "参保身份核验")
exbus sub approve "$SUB" >/dev/null

SRC=$T/ga.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
producer_conf "$T/producer.conf" GA "$SRC" person=$RES
router_conf "$T/router.conf"
mkdir -p "$T/router2"
sed "s|$T/router\$|$T/router2|" "$T/router.conf" >"$T/router2.conf" # its own instance (data dir)
consumer_conf "$T/rs.conf" RS "$RS"
start producer "$EXBUS" producer -c "$T/producer.conf"
wait_for "producer installed its triggers" 20 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q ."
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" "$N"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"

# The updates keep coming while routers die and join: ten slices of N/40.
(for s in $(seq 0 9); do
        sqlite3 "$SRC" "UPDATE person SET phone = '139' || substr(phone, 4)
                        WHERE rowid % 4 = 0 AND rowid % 40 / 4 = $s"
        sleep 1
done) >"$T/updates.log" 2>&1 &
UPDATER=$!
PIDS+=("$UPDATER")

rows() { row_count "$RS" $RES; }
at_least() { [ "$(rows)" -ge "$1" ]; }
# kill_router AT — once the subscriber has AT rows, a random 0-1.9 s later.
kill_router() {
        wait_for "$1 rows at RS" 180 at_least "$1"
        sleep "$((RANDOM % 2)).$((RANDOM % 10))"
        kill9 router
        log "router killed at $(rows) rows"
        start router "$EXBUS" router -c "$T/router.conf"
}
# Both instances own ingest partitions of the router group (exbus lag).
sharing() {
        exbus lag --group exbus-router --json >"$T/lag.json" 2>/dev/null &&
                python3 - "$T/lag.json" <<'EOF'
import json, sys
owners = {p["owner"]["client_id"] for g in json.load(open(sys.argv[1])) if g["group"] == "exbus-router"
          for p in g["partitions"] if p["topic"].startswith("exb.ingest.") and p["owner"]}
sys.exit(0 if len(owners) >= 2 else 1)
EOF
}

kill_router $((N / 10))
start router2 "$EXBUS" router -c "$T/router2.conf"
wait_for "two router instances sharing the ingest partitions (exbus lag)" 60 sharing
check "exbus lag: the partitions are shared by two routers" "0" "$(sharing && echo 0 || echo 1)"
ahead() { local t=$(($(rows) + $1)); echo $((t < N ? t : N)); } # rows to wait for, at most N
kill_router "$(ahead $((N / 20)))" # the instance killed while the other runs
wait_for "rows routed with two instances" 180 at_least "$(ahead $((N / 20)))"
stop router2
kill_router "$(ahead $((N / 10)))"

wait_rows "$RS" $RES "$N" 300
wait "$UPDATER"
wait_for "the producer's changelog drained" 120 sh -c "[ \"\$(sqlite3 '$SRC' 'SELECT count(*) FROM exb_changelog')\" = 0 ]"
wait_for "every update applied" 180 sh -c "[ \"\$(sqlite3 -batch '$RS' \"ATTACH '$SRC' AS src; SELECT count(*) FROM src.person p JOIN \\\"$RES\\\" s USING (id_number) WHERE s.phone IS NOT p.phone\")\" = 0 ]"
same() {
        sqlite3 -batch "$RS" "PRAGMA busy_timeout=5000; ATTACH '$SRC' AS src;
          SELECT count(*) FROM src.person p LEFT JOIN \"$RES\" s USING (id_number)
          WHERE s.id_number IS NULL OR s.name IS NOT p.name OR s.gender IS NOT p.gender
             OR s.birth_date IS NOT p.birth_date OR s.address IS NOT p.address
             OR s.region IS NOT p.region OR s.phone IS NOT p.phone" | tail -n1
}
check "subscriber copy equals the provider table" "0" "$(same)"
check "no row doubled or extra" "$N" "$(rows)"
check "updates applied" "$((N / 4))" "$(sql "$RS" "SELECT count(*) FROM \"$RES\" WHERE phone LIKE '139%'")"

# The independent reader: every change once on the ingest topic (the
# producer was not killed) and once on the delivery topic (read_committed:
# what the killed routers left open or aborted is not there).
EOS=$(python3 "$EXB_SRC/test/integration/eos_check.py" --brokers "$EXBUS_BROKERS" \
        --peek --topic exb.ingest.GA.$RES --topic exb.deliver.RS.$RES --expect "$CHANGES" 2>"$T/eos.err") &&
        rc=0 || rc=$?
echo "$EOS" >"$T/eos.json"
check "eos_check: every change exactly once on ingest and delivery" "0" "$rc"
stop router rs producer
finish
