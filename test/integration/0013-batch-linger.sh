#!/usr/bin/env bash
# batch.linger.ms: records that trickle in one by one are gathered into few
# sink writes (here HTTP POSTs) instead of one write per record.
source "$(dirname "$0")/lib.sh"

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber GJJ --resource 370600-GA-0001 --items id_number,name,region --purpose "公积金核验")
exbus sub approve "$SUB" >/dev/null
start web python3 "$EXB_SRC/test/integration/http_receiver.py" "$T/web.port" "$T/web.json" ""
wait_for "the HTTP service" 10 test -s "$T/web.port"

SRC=$T/ga.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
producer_conf "$T/producer.conf" GA "$SRC" person=370600-GA-0001
router_conf "$T/router.conf"
mkdir -p "$T/consumer-GJJ"
printf 'dept = GJJ\ndata.dir = %s\nsink.type = http\nsink.url = http://127.0.0.1:%s/inbox\nbatch.linger.ms = 2000\n' \
        "$T/consumer-GJJ" "$(cat "$T/web.port")" >"$T/gjj.conf"
start producer "$EXBUS" producer -c "$T/producer.conf"
start router "$EXBUS" router -c "$T/router.conf"
start gjj "$EXBUS" consumer -c "$T/gjj.conf"
state() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$T/web.json" "$1" 2>/dev/null || echo 0; }
accepted() { [ "$(state 'len(d["events"])')" = "$1" ]; }

python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 1 # warm-up: every role is up once it arrives
wait_for "the first record at the service" 60 accepted 1
BEFORE=$(state 'd["posts"]')
for i in $(seq 1 10); do # ten changes, 100 ms apart
        python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 1 --start "$i"
        sleep 0.1
done
wait_for "ten more records at the service" 60 accepted 11
POSTS=$(($(state 'd["posts"]') - BEFORE))
log "10 trickled records arrived in $POSTS POST(s)"
check "trickled records are gathered into at most 3 POSTs" "yes" "$([ "$POSTS" -le 3 ] && echo yes)"
check "each record accepted exactly once" "1" "$(state 'max(d["events"].values())')"
stop producer router gjj
finish
