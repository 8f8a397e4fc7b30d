#!/usr/bin/env bash
# The subscriber's database fails under a running consumer (issue #3,
# "Surviving faults"), twice, while records keep arriving:
#   (a) locked: another connection holds BEGIN EXCLUSIVE on it for 10 s;
#   (b) unwritable: the database, its WAL and its directory made immutable
#       (chattr +i) for 10 s. chmod would not do: the tests may run as root,
#       and root writes through any permission bits; an immutable inode
#       refuses writes from everyone, root included, even through a file
#       descriptor opened before (ext4, xfs, btrfs).
# Each time the consumer keeps running and commits nothing — neither in the
# sink's exb_offsets nor in Kafka (the group's committed offsets) — and once
# the database is usable again every record arrives, applied exactly once
# (counted by a trigger of the test's own in the subscriber's database: a
# rolled-back batch rolls its counts back with it).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults_lib.sh"
real_broker_only "proves the group's committed offsets on a real Kafka do not move while the sink is down"
FAULT_S=${EXB_FAULT_S:-10}

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource 370600-GA-0001 \
        --items id_number,name,gender,birth_date,address,region,phone,updated_at --purpose "参保身份核验")
exbus sub approve "$SUB" >/dev/null

SRC=$T/ga.db SINKDIR=$T/sink RS=$T/sink/rs.db TBL=370600-GA-0001 TOPIC=exb.deliver.RS.370600-GA-0001
mkdir -p "$SINKDIR"
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
producer_conf "$T/producer.conf" GA "$SRC" person=370600-GA-0001
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
start producer "$EXBUS" producer -c "$T/producer.conf"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"
wait_for "producer installed its triggers" 30 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q ."
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 50
wait_rows "$RS" "$TBL" 50 60

# The test's own counter of applied records, in the subscriber's database.
sqlite3 "$RS" "CREATE TABLE faults_applied(n INTEGER);
  INSERT INTO faults_applied VALUES(0);
  CREATE TRIGGER faults_ins AFTER INSERT ON \"$TBL\" BEGIN UPDATE faults_applied SET n = n + 1; END;
  CREATE TRIGGER faults_upd AFTER UPDATE ON \"$TBL\" BEGIN UPDATE faults_applied SET n = n + 1; END;
  CREATE TRIGGER faults_del AFTER DELETE ON \"$TBL\" BEGIN UPDATE faults_applied SET n = n + 1; END;"
applied() { sql "$RS" "SELECT n FROM faults_applied"; }
sink_offsets() { sql "$RS" "SELECT coalesce(sum(next_offset), 0) FROM exb_offsets WHERE topic = '$TOPIC'"; }
kafka_committed() { fk committed "$EXBUS_BROKERS" exbus-consumer-RS "$TOPIC"; }
# Records on the delivery topic (read_committed). Counted, not taken from the
# offsets: a transactional router's commit markers take offsets too.
topic_records() { fk count "$EXBUS_BROKERS" "$TOPIC"; }
seq_max() { sql "$SRC" "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name='exb_changelog'"; }
in_sync() { # the subscriber's table equals the provider's
        [ "$(sql "$RS" "ATTACH '$SRC' AS src; SELECT
           (SELECT count(*) FROM src.person p LEFT JOIN \"$TBL\" s USING (id_number)
            WHERE s.id_number IS NULL OR s.name IS NOT p.name OR s.phone IS NOT p.phone)
         + (SELECT count(*) FROM \"$TBL\" s LEFT JOIN src.person p USING (id_number) WHERE p.id_number IS NULL)")" = 0 ]
}

# sink_fault NAME INJECT UNDO START — inject the fault; publish 100 new rows
# (gen.py --start START) and an update of every tenth row; hold the fault
# FAULT_S seconds checking that nothing moves; undo it: then everything must
# arrive, each record applied exactly once.
sink_fault() {
        local name=$1 inject=$2 undo=$3 from=$4
        local off0 app0 t0 seq0 rec0 rows0
        wait_alive "$name: in sync before" 60 "rs router producer" in_sync
        wait_alive "$name: Kafka commit caught up with the sink" 30 "rs" is "$(sink_offsets)" kafka_committed
        off0=$(sink_offsets) app0=$(applied) seq0=$(seq_max) rec0=$(topic_records) rows0=$(row_count "$RS" "$TBL")
        log "$name: injecting the fault at $rec0 delivered records (sink offsets $off0)"
        $inject
        t0=$SECONDS
        python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 100 --start "$from"
        sqlite3 "$SRC" "UPDATE person SET phone = '139' || substr(phone, 4) WHERE rowid % 10 = 0"
        local changes=$(($(seq_max) - seq0))
        wait_alive "$name: the router delivered the $changes new changes to the topic" 60 "rs router producer" \
                is "$((rec0 + changes))" topic_records
        while [ $((SECONDS - t0)) -lt "$FAULT_S" ]; do
                alive rs || fail "$name: the consumer died"
                [ "$(sink_offsets)" = "$off0" ] || fail "$name: exb_offsets moved while the sink was down ($off0 -> $(sink_offsets))"
                [ "$(row_count "$RS" "$TBL")" = "$rows0" ] || fail "$name: rows appeared while the sink was down"
                sleep 1
        done
        check "$name: the consumer kept running" "yes" "$(alive rs && echo yes)"
        check "$name: nothing in exb_offsets moved" "$off0" "$(sink_offsets)"
        check "$name: nothing committed to Kafka" "$off0" "$(kafka_committed)"
        check "$name: nothing applied" "$app0" "$(applied)"
        $undo
        log "$name: fault removed after $((SECONDS - t0)) s"
        wait_alive "$name: in sync after the fault" 60 "rs router producer" in_sync
        check "$name: the new rows arrived" "$((rows0 + 100))" "$(row_count "$RS" "$TBL")"
        check "$name: each of the $changes records applied exactly once" "$((app0 + changes))" "$(applied)"
        check "$name: the sink's offsets moved on" "yes" "$([ "$(sink_offsets)" -ge $((off0 + changes)) ] && echo yes)"
        wait_alive "$name: Kafka commit follows the sink" 30 "rs" is "$(sink_offsets)" kafka_committed
        log "$name: recovered $((SECONDS - t0)) s after the injection"
}

# (a) another connection holds the database's write lock.
lock_db() {
        rm -f "$T/locked"
        start locker python3 "$FAULTS_PY" lock "$RS" 3600 "$T/locked"
        wait_for "the lock is held" 20 test -e "$T/locked"
}
unlock_db() { kill9 locker; }
sink_fault "locked database" lock_db unlock_db 50

# (b) the database file, its WAL and its directory refuse every write.
IMMUTABLE=("$SINKDIR" "$RS" "$RS-wal")
immutable_works() {
        touch "$T/probe" && chattr +i "$T/probe" 2>/dev/null || return 1
        local refused=0
        { echo x >>"$T/probe"; } 2>/dev/null || refused=1
        chattr -i "$T/probe"
        [ $refused = 1 ]
}
freeze() { chattr +i "${IMMUTABLE[@]}"; }
thaw() { chattr -i "${IMMUTABLE[@]}"; }
if immutable_works; then
        at_exit 'chattr -i "${IMMUTABLE[@]}"'
        sink_fault "unwritable database" freeze thaw 150
else
        log "SKIPPED (b): chattr +i is not available here (needs CAP_LINUX_IMMUTABLE and ext4/xfs/btrfs)"
fi

stop producer router rs
finish
