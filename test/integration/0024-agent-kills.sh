#!/usr/bin/env bash
# kill -9 of the producer agent (three times or more, once in the middle of
# its --snapshot) and of the consumer agent (twice) at random moments while
# a department's database changes steadily (inserts, updates, deletes), each
# restarted at once: the subscriber's copy equals the provider's table, and
# an independent reader (eos_check.py: confluent-kafka + Apache Avro, with
# isolation.level=read_committed) finds every event id exactly once on the
# ingest topic (a duplicate there is the producer's fault) and on the
# delivery topic.
#
# Scale: EXB_AGENT_KILL_CHANGES changes (default 120,000) written at
# EXB_AGENT_KILL_RATE changes/s (default 3,000) after EXB_AGENT_KILL_ROWS
# rows that exist before capture (default 30,000, published by --snapshot).
# EXB_KILL_SEED makes the kill moments repeatable.
source "$(dirname "$0")/lib.sh"
real_broker_only "exactly-once evidence is about Kafka's own log; the embedded broker keeps 5 MiB per partition"
CHANGES=${EXB_AGENT_KILL_CHANGES:-120000}
RATE=${EXB_AGENT_KILL_RATE:-3000}
ROWS=${EXB_AGENT_KILL_ROWS:-30000}
SEED=${EXB_KILL_SEED:-$$}
RANDOM=$SEED
log "EXB_KILL_SEED=$SEED repeats the kill moments"
RES=370600-GA-0001

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource $RES \
        --items id_number,name,gender,birth_date,address,region,phone,updated_at --purpose "参保身份核验")
exbus sub approve "$SUB" >/dev/null

SRC=$T/ga.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" "$ROWS" # exist before any capture
producer_conf "$T/producer.conf" GA "$SRC" person=$RES
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
STATE=$T/producer-GA/producer-state.db

# The department's application: CHANGES single-row changes at RATE/s, in
# transactions of 500; inserts of new people, updates of a live row's phone
# and address (always a new value, so each is one captured change), deletes.
cat >"$T/writer.py" <<'EOF'
import random, sqlite3, sys, time
sys.path.insert(0, sys.argv[4])
from gen import person_row
db, total, rate, first = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[5])
con = sqlite3.connect(db, timeout=60, isolation_level=None)
rnd = random.Random(24)
live = [r[0] for r in con.execute("SELECT id_number FROM person")]
nxt, done, t0 = first, 0, time.monotonic()
while done < total:
    con.execute("BEGIN IMMEDIATE")
    for _ in range(min(500, total - done)):
        r = rnd.random()
        if r < 0.5 or len(live) < 1000:
            row = person_row(nxt)
            nxt += 1
            con.execute("INSERT INTO person VALUES(?,?,?,?,?,?,?,?)", row)
            live.append(row[0])
        elif r < 0.85:
            con.execute("UPDATE person SET phone = ?, address = ? WHERE id_number = ?",
                        ("139%08d" % done, "新地址%d" % done, rnd.choice(live)))
        else:
            k = rnd.randrange(len(live))
            live[k], live[-1] = live[-1], live[k]
            con.execute("DELETE FROM person WHERE id_number = ?", (live.pop(),))
        done += 1
    con.execute("COMMIT")
    # an application pauses between transactions (SQLite's locking is not
    # fair: back-to-back writers starve the agent's deletes)
    time.sleep(max(0.01, done / rate - (time.monotonic() - t0)))
print(done)
EOF

start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"
start producer "$EXBUS" producer -c "$T/producer.conf" --snapshot
wait_for "producer installed its triggers" 30 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q ."
T0=$SECONDS
start writer python3 "$T/writer.py" "$SRC" "$CHANGES" "$RATE" "$EXB_SRC/test/integration" "$ROWS"

# 1. The producer in the middle of its snapshot; restarted with --snapshot: it resumes.
snap_progress() { sqlite3 "$STATE" "SELECT coalesce(max(last_pos), 0) FROM snapshot_progress" 2>/dev/null || echo 0; }
snap_started() { [ "$(snap_progress)" -gt 0 ]; }
wait_for "snapshot progress" 60 snap_started
kill9 producer
log "producer killed at snapshot position $(snap_progress) of $ROWS ($(sql "$STATE" "SELECT count(*) FROM snapshot_runs WHERE finished IS NULL") run unfinished)"
start producer "$EXBUS" producer -c "$T/producer.conf" --snapshot

# 2. Then, at random moments while the changes flow: producer, consumer,
# producer, consumer, producer (2-6 s apart); each restarted at once.
writing() { kill -0 "$PID_writer" 2>/dev/null; }
pause() { sleep "$((2 + RANDOM % 4)).$((RANDOM % 10))"; }
KILLS=1
for who in rs producer rs producer producer; do
        pause
        writing || log "note: the writer finished before kill $((KILLS + 1)) (raise EXB_AGENT_KILL_CHANGES)"
        backlog=$(sql "$SRC" "SELECT count(*) FROM exb_changelog" 2>/dev/null || echo "?")
        kill9 $who
        KILLS=$((KILLS + 1))
        log "kill -9 $who after $((SECONDS - T0)) s (changelog backlog $backlog, RS rows $(row_count "$RS" $RES))"
        if [ $who = rs ]; then
                start rs "$EXBUS" consumer -c "$T/rs.conf"
        elif [ "$(sql "$STATE" "SELECT count(*) FROM snapshot_runs WHERE finished IS NULL")" != 0 ]; then
                log "the snapshot is still unfinished: --snapshot again (it resumes)"
                start producer "$EXBUS" producer -c "$T/producer.conf" --snapshot
        else
                start producer "$EXBUS" producer -c "$T/producer.conf"
        fi
done

wait "$PID_writer" || fail "the writer failed (see $T/writer.log)"
TOTAL=$(tail -n1 "$T/writer.log")
log "writer done: $TOTAL changes in $((SECONDS - T0)) s"
check "every change captured" "$CHANGES" "$(sql "$SRC" "SELECT seq FROM sqlite_sequence WHERE name='exb_changelog'")"
wait_for "the producer's changelog drained" 120 sh -c "[ \"\$(sqlite3 '$SRC' 'SELECT count(*) FROM exb_changelog')\" = 0 ]"
check "snapshot run finished, resumed rather than restarted" "1|1" \
        "$(sql "$STATE" "SELECT count(*), count(finished) FROM snapshot_runs")"

same() {
        sqlite3 -batch "$RS" "PRAGMA busy_timeout=5000; ATTACH '$SRC' AS src;
          SELECT (SELECT count(*) FROM src.person p LEFT JOIN \"$RES\" s USING (id_number)
                  WHERE s.id_number IS NULL OR s.name IS NOT p.name OR s.gender IS NOT p.gender
                     OR s.birth_date IS NOT p.birth_date OR s.address IS NOT p.address
                     OR s.region IS NOT p.region OR s.phone IS NOT p.phone)
               + (SELECT count(*) FROM \"$RES\" s LEFT JOIN src.person p USING (id_number)
                  WHERE p.id_number IS NULL)" | tail -n1
}
wait_for "the subscriber's copy equals the provider's table" 180 sh -c "[ \"\$(sqlite3 -batch '$RS' \"ATTACH '$SRC' AS src; SELECT (SELECT count(*) FROM src.person p LEFT JOIN \\\"$RES\\\" s USING (id_number) WHERE s.id_number IS NULL OR s.phone IS NOT p.phone OR s.address IS NOT p.address) + (SELECT count(*) FROM \\\"$RES\\\" s LEFT JOIN src.person p USING (id_number) WHERE p.id_number IS NULL)\")\" = 0 ]"
log "converged $((SECONDS - T0)) s after the writer started"
check "subscriber copy equals the provider table (every item, no extra row)" "0" "$(same)"
check "same row count" "$(row_count "$SRC" person)" "$(row_count "$RS" $RES)"
check "no change rejected" "0" "$(sql "$SRC" "SELECT count(*) FROM exb_rejects")"
check "nothing dead-lettered at RS" "0" "$(sql "$RS" "SELECT count(*) FROM exb_dead_letters")"

# What the restarts found on Kafka (the producer's own account).
grep -h "recovery" "$T/producer.log" | sed 's/^/    /' || true
RECOVERED=$( (grep -ho "; [0-9]* already on Kafka" "$T/producer.log" || true) | awk '{s += $2} END {print s + 0}')
log "changes found on Kafka by the restarted producers, not sent again: $RECOVERED"
[ "$RECOVERED" -gt 0 ] || log "note: no kill landed while changes were in flight (nothing to recover this run)"

# The subscriber's side table of event ids: wait until it stops growing
# (the router's last transactions are applied).
events() { sql "$RS" "SELECT count(*) FROM exb_events"; }
prev=-1
deadline=$((SECONDS + 90))
while [ "$(events)" != "$prev" ] && [ $SECONDS -lt $deadline ]; do
        prev=$(events)
        sleep 3
done
EVENTS=$(events)

# The independent count (confluent-kafka, read_committed; --peek reads op
# and event id from the envelope's head: 0021 decodes whole records):
# every change and every snapshot row is one event id on the ingest topic
# and one on RS's delivery topic, each seen exactly once.
rc=0
python3 "$EXB_SRC/test/integration/eos_check.py" --brokers "$EXBUS_BROKERS" --peek \
        --topic exb.ingest.GA.$RES --topic exb.deliver.RS.$RES >"$T/eos.json" 2>"$T/eos.log" || rc=$?
cat "$T/eos.log"
eos() { # TOPIC FIELD...
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[sys.argv[2]]
print(" ".join(str(r["ops"][f] if f in r["ops"] else r[f]) for f in sys.argv[3:]))' "$T/eos.json" "$@"
}
python3 - "$T/eos.json" <<'EOF2' || true
import json, sys
for topic, r in json.load(open(sys.argv[1])).items():
    for d in r["duplicates"][:20]:
        print("    duplicate on %s: %s x%d at %s" % (topic, d["event_id"], d["count"], " ".join(d["at"])))
EOF2
SNAP=$(eos exb.ingest.GA.$RES SNAPSHOT)
EXPECT=$((CHANGES + SNAP))
log "snapshot rows published: $SNAP (the $ROWS rows plus those inserted before the snapshot read them, less those deleted); expected event ids: $EXPECT"
check "eos_check: no duplicate, nothing undecodable (exit status)" "0" "$rc"
check "ingest topic: every change and snapshot row once (no duplicate from the producer restarts)" \
        "0 0 $EXPECT $EXPECT" "$(eos exb.ingest.GA.$RES duplicate_count undecodable messages distinct_event_ids)"
check "delivery topic: every event id once" \
        "0 0 $EXPECT $EXPECT" "$(eos exb.deliver.RS.$RES duplicate_count undecodable messages distinct_event_ids)"
check "the subscriber's exb_events: every event id applied" "$EXPECT" "$EVENTS"
log "$KILLS kills (producer 4, consumer 2); $((SECONDS - T0)) s from the first change"
stop producer rs router
finish
