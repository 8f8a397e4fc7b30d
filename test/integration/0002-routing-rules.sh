#!/usr/bin/env bash
# Projection, masks, filter, update-out-of-filter -> delete, and revocation,
# asserted on the subscribers' SQLite databases.
#
#   GA (公安) publishes person rows (370600-GA-0001) from its SQLite database.
#   GJJ gets id_number (partial:6:4), name (hash), birth_date, address
#       (redact), region; only region 370602.
#   RS  gets id_number, name, region of every person, unmasked.
source "$(dirname "$0")/lib.sh"

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
GJJ_SUB=$(exbus sub request --subscriber GJJ --resource 370600-GA-0001 \
        --items id_number,name,birth_date,address,region --purpose "公积金提取身份核验")
RS_SUB=$(exbus sub request --subscriber RS --resource 370600-GA-0001 \
        --items id_number,name,region --purpose "社保参保身份核验")
exbus sub approve "$GJJ_SUB" --mask id_number=partial:6:4 --mask name=hash \
        --mask address=redact --filter 'region == "370602"' >/dev/null
exbus sub approve "$RS_SUB" >/dev/null

SRC=$T/ga.db GJJ=$T/gjj.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
producer_conf "$T/producer.conf" GA "$SRC" person=370600-GA-0001
router_conf "$T/router.conf"
consumer_conf "$T/gjj.conf" GJJ "$GJJ"
consumer_conf "$T/rs.conf" RS "$RS"
start producer "$EXBUS" producer -c "$T/producer.conf"
start router "$EXBUS" router -c "$T/router.conf"
start gjj "$EXBUS" consumer -c "$T/gjj.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"
wait_for "producer installed its triggers" 20 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q ."

# 30 people after the triggers are in: captured as CREATE changes.
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 30
wait_rows "$RS" 370600-GA-0001 30 60
wait_rows "$GJJ" 370600-GA-0001 10 30
check "RS columns are the approved items only" "id_number,name,region" \
        "$(sql "$RS" "SELECT group_concat(name) FROM pragma_table_info('370600-GA-0001')")"
check "GJJ columns are the approved items only" "id_number,name,birth_date,address,region" \
        "$(sql "$GJJ" "SELECT group_concat(name) FROM pragma_table_info('370600-GA-0001')")"

ID0=$(sql "$SRC" "SELECT id_number FROM person WHERE name='居民0'")
MASKED0="${ID0:0:6}********${ID0:14:4}"
HASH0=$(python3 -c "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), '居民0'.encode(), hashlib.sha256).hexdigest())" "$EXBUS_MASK_SECRET")
check "partial mask of the citizen id" "1" "$(sql "$GJJ" "SELECT count(*) FROM \"370600-GA-0001\" WHERE id_number='$MASKED0'")"
check "hash mask is HMAC-SHA256 of the name" "$HASH0" \
        "$(sql "$GJJ" "SELECT name FROM \"370600-GA-0001\" WHERE id_number='$MASKED0'")"
check "redacted address is null" "0" "$(sql "$GJJ" "SELECT count(*) FROM \"370600-GA-0001\" WHERE address IS NOT NULL")"
check "birth date delivered as a date" "$(sql "$SRC" "SELECT birth_date FROM person WHERE name='居民0'")" \
        "$(sql "$GJJ" "SELECT birth_date FROM \"370600-GA-0001\" WHERE id_number='$MASKED0'")"
check "filter keeps region 370602 only" "370602" "$(sql "$GJJ" "SELECT group_concat(DISTINCT region) FROM \"370600-GA-0001\"")"
check "RS gets unmasked ids" "$ID0" "$(sql "$RS" "SELECT id_number FROM \"370600-GA-0001\" WHERE name='居民0'")"

# Where GJJ's deliveries went: each on the partition Kafka's partitioner gives
# the key of its ingest record (eos_check.py computes murmur2 itself), though
# the delivered key is masked and hashes elsewhere.
IN=exb.ingest.GA.370600-GA-0001 OUT=exb.deliver.GJJ.370600-GA-0001
python3 "$EXB_SRC/test/integration/eos_check.py" --brokers "$EXBUS_BROKERS" --peek --timeout 30 \
        --topic $IN --topic $OUT --key-partitions $IN=$OUT >"$T/kp.json" 2>"$T/kp.err" || true
check "GJJ's deliveries (masked keys) on the partitions of their ingest keys" "10 0" \
        "$(python3 -c "import json,sys; r=json.load(open(sys.argv[1]))[sys.argv[2]]['key_partitions']; print(r['checked'], r['misplaced'])" "$T/kp.json" $OUT 2>&1)"

# 居民0 moves out of 370602 (GJJ: delete), 居民1 moves in (GJJ: upsert), 居民3 is deleted.
sqlite3 "$SRC" "UPDATE person SET region='370611' WHERE name='居民0';
                UPDATE person SET region='370602' WHERE name='居民1';
                DELETE FROM person WHERE name='居民3';"
wait_for "居民0 left GJJ's copy" 30 \
        sh -c "[ \"\$(sqlite3 '$GJJ' \"SELECT count(*) FROM \\\"370600-GA-0001\\\" WHERE id_number='$MASKED0'\")\" = 0 ]"
wait_rows "$RS" 370600-GA-0001 29 30
wait_rows "$GJJ" 370600-GA-0001 9 30
check "RS sees the new region of 居民0" "370611" "$(sql "$RS" "SELECT region FROM \"370600-GA-0001\" WHERE name='居民0'")"
check "GJJ got 居民1 when it entered the filter" "370602" \
        "$(sql "$GJJ" "SELECT region FROM \"370600-GA-0001\" WHERE id_number LIKE '%$(sql "$SRC" "SELECT substr(id_number,15) FROM person WHERE name='居民1'")'")"

# Revocation: nothing published after it is applied reaches GJJ.
exbus sub revoke "$GJJ_SUB" --reason "协议到期" >/dev/null
check "revoked subscription is not routed" "0" "$(exbus routes --json | python3 -c "import json,sys; print(sum(len(r['deliveries']) for r in json.load(sys.stdin) if r['resource']=='370600-GA-0001' and any(d['subscriber']=='GJJ' for d in r['deliveries'])))")"
sleep 2 # the router applies control changes between batches (well under a second)
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 6 --start 30
wait_rows "$RS" 370600-GA-0001 35 30
sleep 2
check "GJJ received nothing after the revocation" "9" "$(row_count "$GJJ" 370600-GA-0001)"
check "sub list shows the revocation" "revoked" \
        "$(exbus sub list --json | python3 -c "import json,sys; print([s['state'] for s in json.load(sys.stdin) if s['id']=='$GJJ_SUB'][0])")"
stop producer router gjj rs
finish
