#!/usr/bin/env bash
# kill -9 of the router and of the consumer in the middle of 50,000 changes,
# then restart: every change arrives, no row is missing or doubled, and the
# subscriber's copy equals the provider's table.
source "$(dirname "$0")/lib.sh"
N=${EXB_KILL_ROWS:-40000}  # rows inserted; plus N/4 updates = 50,000 changes by default

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource 370600-GA-0001 \
        --items id_number,name,gender,birth_date,address,region,phone,updated_at --purpose "参保身份核验")
exbus sub approve "$SUB" >/dev/null

SRC=$T/ga.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
producer_conf "$T/producer.conf" GA "$SRC" person=370600-GA-0001
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
start producer "$EXBUS" producer -c "$T/producer.conf"
wait_for "producer installed its triggers" 20 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q ."
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" "$N"
sqlite3 "$SRC" "UPDATE person SET phone = '139' || substr(phone, 4) WHERE rowid % 4 = 0"
CHANGES=$((N + N / 4))
log "$CHANGES changes captured"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"

at_least() { [ "$(row_count "$RS" 370600-GA-0001)" -ge "$1" ]; }
wait_for "first rows at RS" 120 at_least $((N / 5))
kill9 router
log "router killed at $(row_count "$RS" 370600-GA-0001) rows"
start router "$EXBUS" router -c "$T/router.conf"
wait_for "rows routed by the restarted router" 120 at_least $((N * 3 / 5))
kill9 rs
log "consumer killed at $(row_count "$RS" 370600-GA-0001) rows"
start rs "$EXBUS" consumer -c "$T/rs.conf"

wait_rows "$RS" 370600-GA-0001 "$N" 300
wait_for "the producer's changelog drained" 60 sh -c "[ \"\$(sqlite3 '$SRC' 'SELECT count(*) FROM exb_changelog')\" = 0 ]"
same() {
        sqlite3 -batch "$RS" "PRAGMA busy_timeout=5000; ATTACH '$SRC' AS src;
          SELECT count(*) FROM src.person p LEFT JOIN \"370600-GA-0001\" s USING (id_number)
          WHERE s.id_number IS NULL OR s.name IS NOT p.name OR s.gender IS NOT p.gender
             OR s.birth_date IS NOT p.birth_date OR s.address IS NOT p.address
             OR s.region IS NOT p.region OR s.phone IS NOT p.phone" | tail -n1
}
wait_for "every update applied" 60 sh -c "[ \"\$(sqlite3 -batch '$RS' \"ATTACH '$SRC' AS src; SELECT count(*) FROM src.person p JOIN \\\"370600-GA-0001\\\" s USING (id_number) WHERE s.phone IS NOT p.phone\")\" = 0 ]"
check "subscriber copy equals the provider table" "0" "$(same)"
check "no row doubled or extra" "$N" "$(row_count "$RS" 370600-GA-0001)"
check "no change rejected" "0" "$(sql "$SRC" "SELECT count(*) FROM exb_rejects")"
check "updated phones arrived" "$((N / 4))" "$(sql "$RS" "SELECT count(*) FROM \"370600-GA-0001\" WHERE phone LIKE '139%'")"
finish
