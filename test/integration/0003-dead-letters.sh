#!/usr/bin/env bash
# Bad records are dead-lettered with their reason while good ones pass, and
# the router keeps running. The bad bytes are published straight to the
# ingest topic with kcat (an independent Kafka client); the framed Avro is
# built with exb_codec_tool from the catalog's own schema text.
source "$(dirname "$0")/lib.sh"

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource 370600-SC-0001 \
        --items credit_code,name,legal_rep,reg_capital,established,region --purpose "参保单位核验")
exbus sub approve "$SUB" >/dev/null

SRC=$T/sc.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl company)"
producer_conf "$T/producer.conf" SC "$SRC" company=370600-SC-0001
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
start producer "$EXBUS" producer -c "$T/producer.conf"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"

TOPIC=exb.ingest.SC.370600-SC-0001
exbus catalog show 370600-SC-0001 --json >"$T/sc.json"
exbus catalog show 370600-GA-0001 --json >"$T/ga.json"
python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['avro_schema'])" "$T/sc.json" >"$T/sc.avsc"
python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['avro_schema'])" "$T/ga.json" >"$T/ga.avsc"
SC_ID=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['schema_id'])" "$T/sc.json")
GA_ID=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['schema_id'])" "$T/ga.json")
GOOD=$(python3 "$EXB_SRC/test/integration/gen.py" uscc 7)
BADCHECK="${GOOD:0:17}$( [ "${GOOD:17:1}" = 0 ] && echo 1 || echo 0)"
PERSON=$(python3 "$EXB_SRC/test/integration/gen.py" id 1)

# encode SCHEMA ID JSON FILE — one framed Avro value into FILE.
encode() {
        echo "$3" | "$EXB_BIN_DIR/exb_codec_tool" encode "$1" "$2" |
                python3 -c "import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))" >"$4"
}
rec() { # CODE SOURCE
        printf '{"op":"CREATE","event_id":"t-%s","source":"%s","ts_ms":1768465800000,"data":{"credit_code":"%s","name":"测试企业","legal_rep":null,"legal_rep_id":null,"reg_capital":null,"established":null,"status":null,"region":"370602","updated_at":null}}' "$1" "$2" "$1"
}
encode "$T/sc.avsc" "$SC_ID" "$(rec "$GOOD" SC)" "$T/good.bin"
head -c 1024 /dev/urandom >"$T/random.bin"
head -c 20 "$T/good.bin" >"$T/truncated.bin"
{ printf '\x00\x00\x0f\x42\x3f'; tail -c +6 "$T/good.bin"; } >"$T/unknown-id.bin" # schema id 999999
encode "$T/ga.avsc" "$GA_ID" "{\"op\":\"CREATE\",\"event_id\":\"t-ga\",\"source\":\"GA\",\"ts_ms\":0,\"data\":{\"id_number\":\"$PERSON\",\"name\":\"张三\",\"gender\":null,\"birth_date\":null,\"address\":null,\"region\":null,\"phone\":null,\"updated_at\":null}}" "$T/other-resource.bin"
encode "$T/sc.avsc" "$SC_ID" "$(rec "$BADCHECK" SC)" "$T/bad-check.bin"
encode "$T/sc.avsc" "$SC_ID" "$(rec "$GOOD" GA)" "$T/wrong-source.bin"
for f in random truncated unknown-id other-resource bad-check wrong-source; do
        kcat -P -b "$EXBUS_BROKERS" -t "$TOPIC" -k "$f" "$T/$f.bin"
done
# ... and good records around them, through the producer agent.
python3 "$EXB_SRC/test/integration/gen.py" company "$SRC" 5
kcat -P -b "$EXBUS_BROKERS" -t "$TOPIC" -k "$GOOD" "$T/good.bin"

wait_rows "$RS" 370600-SC-0001 6 60
dlq_is() { [ "$(exbus dlq list --provider SC --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")" = "$1" ]; }
wait_for "six dead letters" 30 dlq_is 6
exbus dlq list --provider SC --json >"$T/dlq.json"
stage_of() { python3 -c "import json,sys; print([d['stage'] for d in json.load(open(sys.argv[1])) if d['key']==sys.argv[2]][0])" "$T/dlq.json" "$1"; }
error_of() { python3 -c "import json,sys; print([d['error'] for d in json.load(open(sys.argv[1])) if d['key']==sys.argv[2]][0])" "$T/dlq.json" "$1"; }
check "random bytes: schema or decode stage" "yes" "$(case $(stage_of random) in schema|decode) echo yes;; *) stage_of random;; esac)"
check "truncated body: decode stage" "decode" "$(stage_of truncated)"
check "unknown schema id: schema stage" "schema" "$(stage_of unknown-id)"
check "unknown schema id: reason names it" "yes" "$(error_of unknown-id | grep -q 999999 && echo yes)"
check "schema of another resource: schema stage" "schema" "$(stage_of other-resource)"
check "another resource: reason names both" "yes" "$(error_of other-resource | grep -q 370600-GA-0001 && echo yes)"
check "bad check character: check stage" "check" "$(stage_of bad-check)"
check "bad check: reason names item and check" "yes" "$(error_of bad-check | grep -q 'credit_code.*gb32100' && echo yes)"
check "wrong source: check stage" "check" "$(stage_of wrong-source)"
check "dead letter keeps the original bytes" "$(stat -c %s "$T/random.bin")" \
        "$(python3 -c "import json,sys; print([d['value_bytes'] for d in json.load(open(sys.argv[1])) if d['key']=='random'][0])" "$T/dlq.json")"
check "dead letter names its origin topic" "$TOPIC" \
        "$(python3 -c "import json,sys; print({d['origin_topic'] for d in json.load(open(sys.argv[1]))}.pop())" "$T/dlq.json")"
check "the router is still running" "yes" "$(kill -0 "$PID_router" && echo yes)"
check "good records delivered" "6" "$(row_count "$RS" 370600-SC-0001)"
stop producer router rs
finish
