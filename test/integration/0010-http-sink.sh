#!/usr/bin/env bash
# HTTP sink (sink.type = http): the subscriber GJJ receives its deliveries as
# JSON batches POSTed to a real HTTP service (http_receiver.py) that fails in
# scripted ways: 503 for a while, a response slower than sink.timeout.ms
# after it had accepted the body, a connection closed without a response
# (before and after accepting), a 400 for the body holding one bad record.
#
# The service keeps accepted bodies by Idempotency-Key, ignoring repeats, and
# recomputes each key from its records. Asserted:
#  - every event id published on exb.deliver.GJJ.<resource> (read back with
#    kcat and parsed here) is accepted exactly once, except the bad record,
#    which is in the consumer's local dead-letter store with the status and
#    the (truncated) response body; the service's table equals the
#    provider's table (per-key order kept);
#  - the sink down (every POST a 503) and the consumer killed with -9 in the
#    middle: after a restart every record of that time still arrives,
#    exactly once — nothing was committed before a 2xx;
#  - the auth header, taken from the environment, reached the service on
#    every request and never the consumer's log;
#  - TLS: an unknown CA is refused by default (nothing sent), a private CA
#    is trusted with sink.tls.ca.file, and a service that requires a client
#    certificate gets one with sink.tls.cert.file/key.file.
source "$(dirname "$0")/lib.sh"

RES=370600-GA-0001
start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber GJJ --resource $RES --items id_number,name,region \
        --purpose "公积金提取身份核验")
exbus sub approve "$SUB" >/dev/null

SRC=$T/ga.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
producer_conf "$T/producer.conf" GA "$SRC" person=$RES
router_conf "$T/router.conf"

TOKEN="t0ken-$RANDOM$RANDOM-secret"
export EXB_HTTP_AUTH="Authorization: Bearer $TOKEN"
start web python3 "$EXB_SRC/test/integration/http_receiver.py" "$T/web.port" "$T/web.json" \
        "1-3:503,6:slow,9:accept-drop,12:drop"
wait_for "the HTTP service" 10 test -s "$T/web.port"
BASE=http://127.0.0.1:$(cat "$T/web.port")

# http_consumer_conf FILE DEPT URL — the consumer with the HTTP sink.
http_consumer_conf() {
        mkdir -p "$T/consumer-$2"
        cat >"$1" <<EOF
dept = $2
data.dir = $T/consumer-$2
sink.type = http
sink.url = $3
sink.batch.max = 5
sink.timeout.ms = 1000
sink.connect.timeout.ms = 1000
sink.auth.header.env = EXB_HTTP_AUTH
EOF
}
http_consumer_conf "$T/gjj.conf" GJJ "$BASE/exbus/GJJ?tenant=city"
DLQ=$T/consumer-GJJ/consumer-GJJ-dlq.db

start producer "$EXBUS" producer -c "$T/producer.conf"
start router "$EXBUS" router -c "$T/router.conf"
start gjj "$EXBUS" consumer -c "$T/gjj.conf"
wait_for "producer installed its triggers" 20 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q ."

# 60 people, one whose name the service refuses, 6 updates, 2 deletes.
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 60
BADID=$(python3 "$EXB_SRC/test/integration/gen.py" id 999 370602 19700101)
sqlite3 "$SRC" "INSERT INTO person(id_number, name, region) VALUES('$BADID', '坏BAD记录', '370602');"
sqlite3 "$SRC" "UPDATE person SET name = name || '（更正）' WHERE rowid % 10 = 0 AND name NOT LIKE '%BAD%';
                DELETE FROM person WHERE rowid IN (3, 4);"
PHASE1=69

# published EXPECTED — event ids on the delivery topic (kcat, parsed here:
# Confluent frame, then the envelope's op and event_id), one a line.
published() {
        kcat -C -b "$EXBUS_BROKERS" -t "exb.deliver.GJJ.$RES" -e -o beginning -q -f '%R%s' 2>/dev/null |
                python3 -c '
import sys
data = sys.stdin.buffer.read()
def varint(v, p):
    shift = r = 0
    while True:
        b = v[p]; p += 1; r |= (b & 0x7f) << shift; shift += 7
        if b < 0x80:
            return (r >> 1) ^ -(r & 1), p
i = 0
while i + 4 <= len(data):
    n = int.from_bytes(data[i:i + 4], "big", signed=True); i += 4
    v = data[i:i + n]; i += n
    assert v[0] == 0, "not a Confluent frame"
    _, p = varint(v, 5)          # op
    ln, p = varint(v, p)         # event_id
    print(v[p:p + ln].decode())
'
}
# web EXPR — a Python expression over the service state `s`, printed.
web() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($1)" "$T/web.json"; }
# dlq_events — event ids of the dead letters (from their raw values).
dlq_events() {
        sqlite3 -batch "$DLQ" "SELECT hex(value) FROM exb_dead_letters" | python3 -c '
import sys
for line in sys.stdin:
    v = bytes.fromhex(line.strip()); p = 5
    def varint(p):
        shift = r = 0
        while True:
            b = v[p]; p += 1; r |= (b & 0x7f) << shift; shift += 7
            if b < 0x80:
                return (r >> 1) ^ -(r & 1), p
    _, p = varint(p); n, p = varint(p)
    print(v[p:p + n].decode())'
}
count_published() { [ "$(published | sort -u | wc -l)" -ge "$1" ]; }
accepted_at_least() { [ "$(web 'len(s["events"])')" -ge "$1" ]; }

wait_for "$PHASE1 changes on the delivery topic" 120 count_published $PHASE1
wait_for "$((PHASE1 - 1)) records accepted by the service" 180 accepted_at_least $((PHASE1 - 1))
wait_for "the bad record dead-lettered" 30 sh -c "[ \"\$(sqlite3 '$DLQ' 'SELECT count(*) FROM exb_dead_letters' 2>/dev/null)\" = 1 ]"

# exactly_once [STATE...] — every published event id accepted once (by the
# services together) or dead-lettered, nothing else.
exactly_once() {
        published | sort >"$T/published.txt"
        dlq_events | sort >"$T/dlq.txt"
        python3 - "$T/published.txt" "$T/dlq.txt" "$T/web.json" "$@" <<'EOF'
import json, sys
pub = open(sys.argv[1]).read().split()
dlq = set(open(sys.argv[2]).read().split())
acc = {}
for f in sys.argv[3:]:
    for e, n in json.load(open(f))["events"].items():
        acc[e] = acc.get(e, 0) + n
problems = []
if len(pub) != len(set(pub)):
    problems.append("an event id published twice")
twice = [e for e, n in acc.items() if n != 1]
if twice:
    problems.append("accepted more than once: %s" % twice[:5])
if set(acc) & dlq:
    problems.append("both accepted and dead-lettered: %s" % sorted(set(acc) & dlq)[:5])
missing = set(pub) - set(acc) - dlq
if missing:
    problems.append("missing: %s" % sorted(missing)[:5])
extra = (set(acc) | dlq) - set(pub)
if extra:
    problems.append("never published: %s" % sorted(extra)[:5])
print("; ".join(problems) or "ok")
EOF
}
# same_table — the service's table equals the provider's (without the refused row).
same_table() {
        sqlite3 -batch -json "$SRC" "SELECT id_number, name, region FROM person WHERE name NOT LIKE '%BAD%'" >"$T/src.json"
        python3 - "$T/web.json" "$T/src.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
src = {r["id_number"]: {"id_number": r["id_number"], "name": r["name"], "region": r["region"]}
       for r in json.load(open(sys.argv[2]))}
print("ok" if rows == src else "differs: %d rows at the service, %d at the provider; first: %s"
      % (len(rows), len(src), next((k for k in set(rows) | set(src) if rows.get(k) != src.get(k)), None)))
EOF
}

check "published: $PHASE1 changes" "$PHASE1" "$(published | sort -u | wc -l)"
check "every record exactly once by idempotency key, or dead-lettered" "ok" "$(exactly_once)"
check "the service's table equals the provider's" "ok" "$(same_table)"
check "the dead letter is the refused record" "$BADID" "$(sql "$DLQ" "SELECT CAST(key AS TEXT) FROM exb_dead_letters")"
REASON=$(sql "$DLQ" "SELECT reason FROM exb_dead_letters")
check "its reason has the status" "yes" "$(echo "$REASON" | grep -q 'HTTP 400' && echo yes)"
check "its reason has the service's answer" "yes" "$(echo "$REASON" | grep -q 'invalid name' && echo yes)"
check "the answer is cut at 4 KiB" "yes" "$(echo "$REASON" | grep -q 'truncated to 4 KiB' && [ ${#REASON} -lt 4600 ] && echo yes)"
check "its reason shows no query string" "no" "$(echo "$REASON" | grep -q 'tenant=' && echo yes || echo no)"
check "503s were answered" "yes" "$(web 's["statuses"].get("503", 0) >= 3' | sed 's/True/yes/')"
check "a slow answer was given up and retried" "yes" "$(web 's["statuses"].get("slow", 0) >= 1' | sed 's/True/yes/')"
check "connections were dropped" "yes" "$(web 's["statuses"].get("drop", 0) >= 1 and s["statuses"].get("accept-drop", 0) >= 1' | sed 's/True/yes/')"
check "bodies already accepted were sent again with the same key" "yes" "$(web 's["repeats"] >= 2' | sed 's/True/yes/')"
check "every Idempotency-Key is the documented SHA-256 of its records" "0" "$(web 's["bad_key"]')"
check "every request was well formed" "0" "$(web 's["bad_body"]')"
check "every request carried the auth header" "0" "$(web 's["bad_auth"]')"

# The sink down across a kill -9 of the consumer: nothing is committed
# before a 2xx, so the records of that time come again after the restart.
sleep 6 # phase 1's offsets auto-committed (auto.commit.interval.ms 5000)
curl -s -X POST -d '{"mode":"down"}' "$BASE/control" >/dev/null
N503=$(web 's["statuses"].get("503", 0)')
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 20 --start 100
wait_for "the sink retried while the service is down" 60 \
        sh -c "[ \$(python3 -c \"import json; print(json.load(open('$T/web.json'))['statuses'].get('503', 0))\") -ge $((N503 + 3)) ]"
kill9 gjj
log "consumer killed while the service answered 503"
start gjj "$EXBUS" consumer -c "$T/gjj.conf"
N503=$(web 's["statuses"].get("503", 0)')
wait_for "the restarted consumer retried" 60 \
        sh -c "[ \$(python3 -c \"import json; print(json.load(open('$T/web.json'))['statuses'].get('503', 0))\") -ge $((N503 + 1)) ]"
curl -s -X POST -d '{"mode":"up"}' "$BASE/control" >/dev/null
wait_for "all $((PHASE1 + 20 - 1)) records accepted" 120 accepted_at_least $((PHASE1 + 20 - 1))
check "after the crash: every record exactly once, or dead-lettered" "ok" "$(exactly_once)"
check "after the crash: the service's table equals the provider's" "ok" "$(same_table)"
check "still one dead letter" "1" "$(sql "$DLQ" "SELECT count(*) FROM exb_dead_letters")"

# TLS: the service's certificate is verified by default; sink.tls.ca.file
# trusts a private CA; sink.tls.cert.file/key.file answer a service that
# requires a client certificate (mutual TLS).
stop gjj
PKI=$T/pki
mkdir -p "$PKI"
(
        cd "$PKI"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=exbus test CA"
        openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1"
        printf 'subjectAltName=IP:127.0.0.1\n' >srv.ext
        openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile srv.ext
        openssl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj "/CN=GJJ"
        openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2
) >"$T/pki.log" 2>&1 || fail "openssl: cannot make the test certificates (see $T/pki.log)"
start webtls python3 "$EXB_SRC/test/integration/http_receiver.py" "$T/webtls.port" "$T/webtls.json" "" \
        "$PKI/srv.pem" "$PKI/srv.key" "$PKI/ca.pem"
wait_for "the HTTPS service" 10 test -s "$T/webtls.port"
http_consumer_conf "$T/gjj-tls.conf" GJJ "https://127.0.0.1:$(cat "$T/webtls.port")/exbus/GJJ"
# log_since LINE PATTERN — PATTERN in the consumer's log after line LINE.
log_since() { tail -n +"$(($1 + 1))" "$T/gjj.log" | grep -q "$2"; }
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 5 --start 200
L=$(wc -l <"$T/gjj.log")
start gjj "$EXBUS" consumer -c "$T/gjj-tls.conf"
wait_for "a certificate from an unknown CA refused" 60 log_since "$L" "sink down: .*SSL certificate problem"
stop gjj
echo "sink.tls.ca.file = $PKI/ca.pem" >>"$T/gjj-tls.conf"
L=$(wc -l <"$T/gjj.log")
start gjj "$EXBUS" consumer -c "$T/gjj-tls.conf"
wait_for "refused without a client certificate" 60 log_since "$L" "sink down: http sink https://"
stop gjj
check "nothing reached the service before the client was trusted" "0" \
        "$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['events']))" "$T/webtls.json")"
printf 'sink.tls.cert.file = %s\nsink.tls.key.file = %s\n' "$PKI/cli.pem" "$PKI/cli.key" >>"$T/gjj-tls.conf"
start gjj "$EXBUS" consumer -c "$T/gjj-tls.conf"
tls_accepted() { [ "$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['events']))" "$T/webtls.json")" -ge 5 ]; }
wait_for "5 records accepted over mutual TLS" 60 tls_accepted
check "over TLS too: every record exactly once, or dead-lettered" "ok" "$(exactly_once "$T/webtls.json")"
check "the auth header never in the consumer's log" "0" "$(grep -c "$TOKEN" "$T/gjj.log" || true)"
stop producer router gjj
finish
