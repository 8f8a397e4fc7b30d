#!/usr/bin/env bash
# Hostile bytes published straight to an ingest topic on a real Kafka (issue
# #3, "Surviving faults"), between good records:
#   big        a 10 MB message: a well-formed frame of the topic's own schema
#              whose `name` is 10 MB long (the ingest topic accepts 16 MiB, as
#              an operator may allow for a department that sends documents);
#   truncated  a valid frame header and the first half of a good datum;
#   random     1 KB of random bytes;
#   foreign    a correctly framed record of another resource's schema id.
# All four land in exb.dlq.SC, byte for byte as published, with exb-error and
# exb-error-stage headers naming the reason; every good record reaches the
# subscriber; the router, the consumer and the producer are still running at
# the end and stop cleanly (under the ASan build: no leak, no error).
#
# The 10 MB record is the operator's choice to accept on the ingest topic
# (its max.message.bytes, set here; Kafka's default is 1 MB). Everything after
# that is exbus's job, with its defaults: the router consumes it (librdkafka
# 2.0.2: fetch.max.bytes 50 MB, receive.message.max.bytes 100 MB; the 1 MB
# max.partition.fetch.bytes is a soft limit, a larger first batch is still
# returned), produces it to exb.dlq.SC (the router's producer must allow
# values up to what the router accepts, RT_MAX_VALUE = 64 MiB; librdkafka's
# message.max.bytes default is 1 MB) and exb.dlq.SC must take it (a dead-letter
# topic created with a max.message.bytes to match; the broker's default is
# 1 MB). A router that cannot dead-letter a record stops, and stops again on
# every restart: one record would halt the provider's whole stream.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults_lib.sh"
real_broker_only "message-size limits of a real Kafka (the embedded broker keeps ~5 MiB per partition)"
BIG=$((10 * 1024 * 1024))
TOPIC_MAX=$((16 * 1024 * 1024))

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource 370600-SC-0001 \
        --items credit_code,name,legal_rep,reg_capital,established,region --purpose "参保单位核验")
exbus sub approve "$SUB" >/dev/null
TOPIC=exb.ingest.SC.370600-SC-0001 DLQ=exb.dlq.SC
# The operator lets SC publish records up to 16 MiB.
fk max-bytes "$EXBUS_BROKERS" "$TOPIC" "$TOPIC_MAX" || fail "cannot set max.message.bytes of $TOPIC"

SRC=$T/sc.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl company)"
producer_conf "$T/producer.conf" SC "$SRC" company=370600-SC-0001
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
start producer "$EXBUS" producer -c "$T/producer.conf"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"
wait_for "producer installed its triggers" 30 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_company_ins'\" | grep -q ."
python3 "$EXB_SRC/test/integration/gen.py" company "$SRC" 5
wait_rows "$RS" 370600-SC-0001 5 60

# The hostile values, framed with the catalog's own schemas by exb_codec_tool.
exbus catalog show 370600-SC-0001 --json >"$T/sc.json"
exbus catalog show 370600-GA-0001 --json >"$T/ga.json"
jget() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }
jget "$T/sc.json" avro_schema >"$T/sc.avsc"
jget "$T/ga.json" avro_schema >"$T/ga.avsc"
SC_ID=$(jget "$T/sc.json" schema_id) GA_ID=$(jget "$T/ga.json" schema_id)
encode() { # SCHEMA ID OUT — JSON on stdin, one framed Avro value into OUT
        "$EXB_BIN_DIR/exb_codec_tool" encode "$1" "$2" |
                python3 -c "import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))" >"$3"
}
company() { # CODE NAME
        printf '{"op":"CREATE","event_id":"t-%s","source":"SC","ts_ms":1768465800000,"data":{"credit_code":"%s","name":"%s","legal_rep":null,"legal_rep_id":null,"reg_capital":null,"established":null,"status":null,"region":"370602","updated_at":null}}' \
                "$1" "$1" "$2"
}
GOOD=$(python3 "$EXB_SRC/test/integration/gen.py" uscc 900)
company "$GOOD" "手工发布的企业" | encode "$T/sc.avsc" "$SC_ID" "$T/good.bin"
python3 -c "import sys; sys.stdout.write('{\"op\":\"CREATE\",\"event_id\":\"t-big\",\"source\":\"SC\",\"ts_ms\":0,\"data\":{\"credit_code\":\"%s\",\"name\":\"%s\",\"legal_rep\":null,\"legal_rep_id\":null,\"reg_capital\":null,\"established\":null,\"status\":null,\"region\":null,\"updated_at\":null}}' % (sys.argv[1], 'A' * int(sys.argv[2])))" \
        "$(python3 "$EXB_SRC/test/integration/gen.py" uscc 901)" "$BIG" | encode "$T/sc.avsc" "$SC_ID" "$T/big.bin"
head -c $(($(stat -c %s "$T/good.bin") / 2)) "$T/good.bin" >"$T/truncated.bin"
head -c 1024 /dev/urandom >"$T/random.bin"
PERSON=$(python3 "$EXB_SRC/test/integration/gen.py" id 1)
printf '{"op":"CREATE","event_id":"t-ga","source":"GA","ts_ms":0,"data":{"id_number":"%s","name":"张三","gender":null,"birth_date":null,"address":null,"region":null,"phone":null,"updated_at":null}}' \
        "$PERSON" | encode "$T/ga.avsc" "$GA_ID" "$T/foreign.bin"
check "the big value is over 10 MB" "yes" "$([ "$(stat -c %s "$T/big.bin")" -gt "$BIG" ] && echo yes)"

for f in big truncated random foreign; do
        kcat -P -b "$EXBUS_BROKERS" -X message.max.bytes=$TOPIC_MAX -t "$TOPIC" -k "$f" "$T/$f.bin" 2>>"$T/kcat.log" ||
                fail "kcat could not publish $f to $TOPIC: $(tail -n 3 "$T/kcat.log")"
done
kcat -P -b "$EXBUS_BROKERS" -t "$TOPIC" -k "$GOOD" "$T/good.bin"
python3 "$EXB_SRC/test/integration/gen.py" company "$SRC" 5 --start 5

wait_alive "the good records after the hostile ones at RS" 90 "router rs producer" rows_are "$RS" 370600-SC-0001 11
dlq_count() { fk dump "$EXBUS_BROKERS" "$DLQ" | python3 -c "import json,sys; print(len(json.load(sys.stdin)))"; }
wait_alive "four dead letters on $DLQ" 60 "router rs producer" is 4 dlq_count
fk dump "$EXBUS_BROKERS" "$DLQ" >"$T/dlq.json"
dl() { # KEY FIELD [HEADER]
        python3 -c "import json,sys
d = [x for x in json.load(open(sys.argv[1])) if x['key'] == sys.argv[2]]
v = d[0][sys.argv[3]] if len(d) == 1 else '%d dead letters' % len(d)
print(v[sys.argv[4]] if len(sys.argv) > 4 and isinstance(v, dict) else v)" "$T/dlq.json" "$@"
}
for f in big truncated random foreign; do
        check "$f: dead-lettered once, value byte for byte" "$(stat -c %s "$T/$f.bin") $(sha256sum <"$T/$f.bin" | cut -d' ' -f1)" \
                "$(dl "$f" len) $(dl "$f" sha256)"
        check "$f: origin topic named" "$TOPIC" "$(dl "$f" headers exb-origin-topic)"
        check "$f: a reason is given" "yes" "$([ -n "$(dl "$f" headers exb-error)" ] && echo yes)"
done
check "big: check stage (a 10 MB name breaks the item's length)" "check" "$(dl big headers exb-error-stage)"
check "big: the reason names the item" "yes" "$(dl big headers exb-error | grep -q name && echo yes)"
check "truncated: decode stage" "decode" "$(dl truncated headers exb-error-stage)"
check "random: schema or decode stage" "yes" "$(case $(dl random headers exb-error-stage) in schema | decode) echo yes ;; *) dl random headers exb-error-stage ;; esac)"
check "foreign: schema stage" "schema" "$(dl foreign headers exb-error-stage)"
check "foreign: the reason names the other resource" "yes" "$(dl foreign headers exb-error | grep -q 370600-GA-0001 && echo yes)"

exbus dlq list --provider SC --json >"$T/dlq-cli.json" 2>"$T/dlq-cli.err" || fail "exbus dlq list: $(cat "$T/dlq-cli.err")"
check "exbus dlq list shows the four, the big one at its size" "4 $(stat -c %s "$T/big.bin")" \
        "$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(len(d), max(x['value_bytes'] for x in d))" "$T/dlq-cli.json")"
for r in router rs producer; do check "$r still running" "yes" "$(alive "$r" && echo yes)"; done
check "good records delivered, nothing else" "11" "$(row_count "$RS" 370600-SC-0001)"
stop producer router rs
finish
