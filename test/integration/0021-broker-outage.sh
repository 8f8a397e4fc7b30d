#!/usr/bin/env bash
# The broker stops for 30 s in the middle of a stream and comes back (issue
# #3, "Surviving faults"): the producer keeps capturing changes locally and
# deletes from its changelog nothing Kafka did not accept; after the restart
# every change arrives once — the subscriber's table equals the provider's,
# and an independent reader (confluent-kafka, read_committed, Apache Avro)
# finds each event id exactly once on the ingest topic and on the delivery
# topic.
#
# This test runs a Kafka of its own (test/kafka/kafka.sh in $T/kafka), not the
# shared EXBUS_TEST_BROKERS one, so stopping it disturbs no other test.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults_lib.sh"
real_broker_only "stops and restarts a real Kafka (the embedded broker keeps its data in memory)"
OUTAGE=${EXB_OUTAGE_S:-30}

own_kafka_start
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource 370600-GA-0001 \
        --items id_number,name,gender,birth_date,address,region,phone,updated_at --purpose "参保身份核验")
exbus sub approve "$SUB" >/dev/null

SRC=$T/ga.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 200 # before the capture: no changes
producer_conf "$T/producer.conf" GA "$SRC" person=370600-GA-0001
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
start producer "$EXBUS" producer -c "$T/producer.conf"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"
wait_for "producer installed its triggers" 30 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q ."
# The 200 rows inserted before the capture existed are not changes; start the
# subscriber's copy from them so the tables can be compared at the end.
sqlite3 "$SRC" "UPDATE person SET updated_at = '2026-01-16T00:00:00Z'" # 200 changes

# A writer streams changes into the provider's table (~40/s) until told to stop.
start writer python3 "$FAULTS_PY" stream "$SRC" "$T/stop-writer" "$T/written"
at_least() { [ "$(row_count "$RS" 370600-GA-0001)" -ge "$1" ]; }
wait_alive "the stream reaches the subscriber" 60 "producer router rs writer" at_least 250

seq_max() { sql "$SRC" "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name='exb_changelog'"; }
clog() { sql "$SRC" "SELECT count(*) FROM exb_changelog WHERE $1"; }

log "stopping the broker at $(seq_max) changes"
own_kafka_stop
T0=$SECONDS
# A delivery report that came in just before the broker went away may still
# be acknowledged (its row deleted) within a poll round or two: let it settle.
sleep 1
M0=$(seq_max) K0=$(clog "seq <= $M0")
log "broker down: $M0 changes so far, $K0 not yet acknowledged"

# During the outage: changes keep being captured, and no changelog row is
# deleted — neither one captured before the stop (not acknowledged by Kafka
# before it went away) nor one captured since. One query, one snapshot:
# "changes so far|rows kept of those before the stop|rows kept since".
census() {
        sql "$SRC" "SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name='exb_changelog'),
                           (SELECT count(*) FROM exb_changelog WHERE seq <= $M0),
                           (SELECT count(*) FROM exb_changelog WHERE seq > $M0)"
}
while [ $((SECONDS - T0)) -lt "$OUTAGE" ]; do
        sleep 3
        IFS='|' read -r m old new <<<"$(census)"
        [ "$old" = "$K0" ] ||
                fail "changelog rows captured before the stop were deleted while Kafka was down ($K0 -> $old)"
        [ "$new" = "$((m - M0))" ] ||
                fail "changes captured during the outage were deleted: $new of $((m - M0)) kept"
        for r in producer router rs writer; do alive "$r" || fail "$r died during the broker outage"; done
done
IFS='|' read -r M1 old new <<<"$(census)"
check "changes kept capturing during the outage" "yes" "$([ $((M1 - M0)) -ge $((OUTAGE * 20)) ] && echo yes || echo "only $((M1 - M0))")"
check "nothing captured before the stop was deleted while Kafka was down" "$K0" "$old"
check "every change captured during the outage is kept" "$((M1 - M0))" "$new"

log "restarting the broker after $((SECONDS - T0)) s"
own_kafka_start
T1=$SECONDS
outage_acked() { [ "$(clog "seq <= $M1")" = 0 ]; }
wait_alive "the changes of the outage acknowledged after the restart" 90 "producer router rs" outage_acked
log "backlog of the outage delivered to Kafka $((SECONDS - T1)) s after the restart"
sleep 3 # a few more changes on the restarted broker
touch "$T/stop-writer"
wait "$PID_writer" || fail "the writer failed"
N=$(seq_max)
check "the writer's changes are the changelog's" "$(cat "$T/written")" "$((N - 200))"

drained() { [ "$(clog 1)" = 0 ]; }
wait_for "the producer's changelog drained" 60 drained
diff_rows() {
        sqlite3 -batch "$RS" "PRAGMA busy_timeout=5000; ATTACH '$SRC' AS src;
          SELECT (SELECT count(*) FROM src.person p LEFT JOIN \"370600-GA-0001\" s USING (id_number)
                  WHERE s.id_number IS NULL OR s.name IS NOT p.name OR s.gender IS NOT p.gender
                     OR s.birth_date IS NOT p.birth_date OR s.address IS NOT p.address
                     OR s.region IS NOT p.region OR s.phone IS NOT p.phone OR s.updated_at IS NOT strftime('%Y-%m-%dT%H:%M:%fZ', p.updated_at))
               + (SELECT count(*) FROM \"370600-GA-0001\" s LEFT JOIN src.person p USING (id_number)
                  WHERE p.id_number IS NULL)" | tail -n1
}
same_tables() { [ "$(diff_rows)" = 0 ]; }
wait_alive "the subscriber's copy equals the provider's table" 90 "producer router rs" same_tables
check "subscriber's table equals the provider's" "0" "$(diff_rows)"
check "no change rejected" "0" "$(sql "$SRC" "SELECT count(*) FROM exb_rejects")"

# Independent reads: every change exactly once on each topic. On the
# delivery topic that takes the router's transactions (exactly.once, auto =
# on for a real Kafka): an at-least-once router loses its partitions during
# the outage (session timeout) and routes again what it had not committed
# (measured before the transactions: ~280 duplicates in this test).
DBID=$(sql "$SRC" "SELECT v FROM exb_meta WHERE k='db_id'")
seq 1 "$N" | sed "s/^/GA-$DBID-/" | sort >"$T/expected.ids"
once_each() { # TOPIC FILE — event ids in FILE: each expected one exactly once
        local dup miss extra
        dup=$(awk '{print $1}' "$2" | sort | uniq -d | wc -l)
        miss=$(awk '{print $1}' "$2" | sort -u | comm -23 "$T/expected.ids" - | wc -l)
        extra=$(awk '{print $1}' "$2" | sort -u | comm -13 "$T/expected.ids" - | wc -l)
        check "$1: all $N changes, none missing" "0" "$miss"
        check "$1: no unexpected event" "0" "$extra"
        check "$1: no event id twice (read_committed)" "0" "$dup"
}
fk events "$EXBUS_BROKERS" exb.ingest.GA.370600-GA-0001 >"$T/ingest.events" || fail "ingest topic: undecodable record"
once_each "ingest topic" "$T/ingest.events"
# The subscriber has every row, so the router has produced every delivery.
fk events "$EXBUS_BROKERS" exb.deliver.RS.370600-GA-0001 >"$T/deliver.events" || fail "delivery topic: undecodable record"
once_each "delivery topic" "$T/deliver.events"

stop producer router rs
own_kafka_stop
finish
