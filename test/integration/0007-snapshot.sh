#!/usr/bin/env bash
# The initial full load (存量): `exbus producer --snapshot` publishes every
# existing row as SNAPSHOT; kill -9 in the middle, start again: it resumes
# the same run where it stopped, and the subscriber's copy equals the
# provider's table.
source "$(dirname "$0")/lib.sh"
N=${EXB_SNAPSHOT_ROWS:-60000}

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource 370600-GA-0001 \
        --items id_number,name,gender,birth_date,address,region,phone --purpose "参保身份核验")
exbus sub approve "$SUB" >/dev/null

SRC=$T/ga.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" "$N"   # rows that exist before any capture
producer_conf "$T/producer.conf" GA "$SRC" person=370600-GA-0001
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"

STATE=$T/producer-GA/producer-state.db
progress() { sqlite3 "$STATE" "SELECT coalesce(max(last_pos), 0) FROM snapshot_progress" 2>/dev/null || echo 0; }
started() { [ "$(progress)" -gt 0 ]; }
start producer "$EXBUS" producer -c "$T/producer.conf" --snapshot
wait_for "snapshot progress" 60 started
kill9 producer
AT=$(progress)
log "producer killed at snapshot position $AT of $N"
check "killed before the snapshot finished" "" "$(sqlite3 "$STATE" "SELECT finished FROM snapshot_runs")"
start producer "$EXBUS" producer -c "$T/producer.conf" --snapshot
wait_rows "$RS" 370600-GA-0001 "$N" 180
wait_for "snapshot run finished" 30 sh -c "[ -n \"\$(sqlite3 '$STATE' 'SELECT finished FROM snapshot_runs')\" ]"
check "one snapshot run, resumed rather than restarted" "1" "$(sql "$STATE" "SELECT count(*) FROM snapshot_runs")"
check "every row arrived as a snapshot event of run 1" "$N" \
        "$(sql "$RS" "SELECT count(*) FROM exb_events WHERE event_id LIKE 'GA-%-snap1-%'")"
check "subscriber copy equals the provider table" "0" "$(sqlite3 -batch "$RS" "ATTACH '$SRC' AS src;
        SELECT count(*) FROM src.person p LEFT JOIN \"370600-GA-0001\" s USING (id_number)
        WHERE s.id_number IS NULL OR s.name IS NOT p.name OR s.address IS NOT p.address OR s.phone IS NOT p.phone")"
stop producer router rs
finish
