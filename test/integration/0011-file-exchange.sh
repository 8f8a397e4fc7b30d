#!/usr/bin/env bash
# File exchange (文件交换): a producer whose source is a drop directory of
# CSV and JSONL files, and a subscriber that takes its data as rotating
# JSONL files (besides one with the SQLite sink).
#  1. A CSV still named .part and a JSONL file still being appended to are
#     not taken; once renamed / settled, both are published, their bad lines
#     listed in done/<file>.rejects with line number and reason, and the
#     files moved to done/. A file with a bad header is refused whole.
#  2. A 40,000-line CSV: the producer is killed (-9) in the middle and
#     restarted (and the JSONL consumer too). No line acknowledged before the
#     kill is published again (checked on the ingest topic itself), every
#     good line arrives once at the SQLite subscriber (exb_events), and the
#     JSONL files hold every delivered Kafka record exactly once.
source "$(dirname "$0")/lib.sh"
RES=370600-GA-0001
BIG=${EXB_FILES_ROWS:-40000}

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource $RES \
        --items id_number,name,gender,birth_date,address,region,phone,updated_at --purpose "参保身份核验")
exbus sub approve "$SUB" >/dev/null

DROP=$T/drop RS=$T/rs.db OUT=$T/rs-files PSTATE=$T/producer-GA/producer-files.db
mkdir -p "$DROP"
cat >"$T/producer.conf" <<EOF
dept = GA
data.dir = $T/producer-GA
source.type = files
source.path = $DROP
source.table.person = $RES
source.files.settle.ms = 2000
poll.interval.ms = 50
batch.size = 500
EOF
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
mkdir -p "$T/consumer-RS-files"
cat >"$T/rs-files.conf" <<EOF
dept = RS
data.dir = $T/consumer-RS-files
group.id = exbus-consumer-RS-files
sink.type = jsonl
sink.path = $OUT
sink.rotate.bytes = 262144
sink.rotate.seconds = 2
EOF

# The files: gen.py's citizen ids (valid GB 11643 check digits).
cat >"$T/mk.py" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
from gen import citizen_id
kind, path = sys.argv[2], sys.argv[3]
def pid(i): return citizen_id(i % 1000, "370602", "19600101")  # i < 1000
def big_pid(i): return citizen_id(i % 1000, "370611", f"{1900 + i // 1000:04d}0101")
HDR = "id_number,name,gender,birth_date,address,region,phone,updated_at\n"
if kind == "csv":            # 8 records on 10 lines: 5 good, 3 bad
    bad_id = pid(5)[:17] + ("0" if pid(5)[17] != "0" else "1")
    lines = [HDR,
             f"{pid(1)},张一,男,1990-01-01,\"烟台市芝罘区, 南大街1号\",370602,13800000001,2026-01-15T08:30:00Z\n",
             f"{pid(2)},\"王\"\"二\"\"\",女,1991-02-02,\"第一行\n第二行\",370602,,1768465800000\n",  # lines 3-4
             f"{pid(3)},李三,男,15/01/2026,,370602,,\n",        # 5: not a date
             f"{pid(4)},赵四,女,,,370611,,\n",
             f"{bad_id},钱五,男,,,370611,,\n",                 # 7: check digit
             f"{pid(6)},孙六,男,,,370612\n",                    # 8: 6 fields only
             f"{pid(7)},周七,女,1993-03-03,,370612,,\n",
             f"{pid(8)},吴八,男,1994-04-04,,370612,,\n"]
    open(path, "w").write("".join(lines))
elif kind == "jsonl-line":   # line N of the growing JSONL file (lines 4 and 7 are bad)
    n = int(sys.argv[4])
    if n == 4:
        s = '{"id_number": "broken'
    elif n == 7:
        s = json.dumps({"id_number": pid(100 + n), "nmae": "x"}, ensure_ascii=False)
    else:
        s = json.dumps({"id_number": pid(100 + n), "name": f"居民{n}", "op": "CREATE",
                        "birth_date": "1980-05-05", "region": "370602"}, ensure_ascii=False)
    open(path, "a").write(s + "\n")
elif kind == "big":
    with open(path, "w") as f:
        f.write(HDR)
        for i in range(int(sys.argv[4])):
            f.write(f"{big_pid(i)},居民{i},男,1990-01-01,烟台市某区某路{i}号,370602,,\n")
EOF
mk() { python3 "$T/mk.py" "$EXB_SRC/test/integration" "$@"; }
hash16() { sha256sum "$1" | cut -c1-16; }

start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"
start rs-files "$EXBUS" consumer -c "$T/rs-files.conf"
start producer "$EXBUS" producer -c "$T/producer.conf"

# ---------------------------------------------------------------- part 1
mk csv "$DROP/person-20261123.csv.part"
printf 'id_number,nmae\n1,x\n' >"$DROP/person-badheader.csv"
( for n in $(seq 1 12); do mk jsonl-line "$DROP/person-20261124.jsonl" "$n"; sleep 0.3; done ) &
WRITER=$!
sleep 2.5
check "a .part file is not taken" "yes" "$([ -f "$DROP/person-20261123.csv.part" ] && echo yes)"
check "a file still growing is not taken" "yes" "$([ -f "$DROP/person-20261124.jsonl" ] && echo yes)"
check "nothing of them in the producer's progress" "0" \
        "$(sql "$PSTATE" "SELECT count(*) FROM files WHERE name LIKE 'person-2026112%'")"
wait_for "the bad header refused" 20 test -f "$DROP/refused/person-badheader.csv.rejects"
check "refusal names the column" "yes" \
        "$(grep -q 'column 2 \\"nmae\\" is not an item of 370600-GA-0001 (did you mean \\"name\\"?)' \
                "$DROP/refused/person-badheader.csv.rejects" && echo yes)"
wait $WRITER
check "still nothing delivered" "0" "$(sql "$RS" "SELECT count(*) FROM sqlite_master WHERE name = '$RES'")"
mv "$DROP/person-20261123.csv.part" "$DROP/person-20261123.csv"

wait_for "CSV moved to done/" 30 test -f "$DROP/done/person-20261123.csv"
wait_for "JSONL moved to done/" 30 test -f "$DROP/done/person-20261124.jsonl"
wait_rows "$RS" $RES 15 60 # 5 CSV + 10 JSONL
rejects() { # FILE -> "line:reason" a line
        python3 -c 'import json,sys
for l in open(sys.argv[1]): r = json.loads(l); print("%d:%s" % (r["line"], r["reason"]))' "$1"
}
R=$(rejects "$DROP/done/person-20261123.csv.rejects")
check "CSV rejects: lines 5, 7, 8" "5 7 8" "$(echo "$R" | cut -d: -f1 | xargs)"
check "CSV line 5: not a date" "yes" \
        "$(echo "$R" | grep -q '^5:370600-GA-0001: item "birth_date": "15/01/2026" does not fit type D' && echo yes)"
check "CSV line 7: check digit" "yes" "$(echo "$R" | grep -q '^7:370600-GA-0001: item "id_number": gb11643' && echo yes)"
check "CSV line 8: field count" "yes" "$(echo "$R" | grep -q '^8:370600-GA-0001: 6 field(s), the header has 8' && echo yes)"
R=$(rejects "$DROP/done/person-20261124.jsonl.rejects")
check "JSONL rejects: lines 4, 7" "4 7" "$(echo "$R" | cut -d: -f1 | xargs)"
check "JSONL line 7: unknown member" "yes" "$(echo "$R" | grep -q '^7:.*"nmae" is not an item' && echo yes)"
H=$(hash16 "$DROP/done/person-20261123.csv")
check "event id = dept-hash-line (the multi-line record starts at line 3)" "1" \
        "$(sql "$RS" "SELECT count(*) FROM exb_events WHERE event_id = 'GA-$H-3'")"
check "quoting and line breaks kept" "王\"二\"|第一行 第二行" \
        "$(sql "$RS" "SELECT name, replace(address, char(10), ' ') FROM \"$RES\" WHERE name LIKE '王%'")"
check "drop directory empty" "" "$(cd "$DROP" && ls -p | grep -v / || true)"

# ---------------------------------------------------------------- part 2
mk big "$DROP/person-big.csv.part" "$BIG"
mv "$DROP/person-big.csv.part" "$DROP/person-big.csv"
HB=$(hash16 "$DROP/person-big.csv")
acked() { sql "$PSTATE" "SELECT coalesce(max(acked_line), 0) FROM files WHERE name = 'person-big.csv'"; }
# Kill as soon as a tenth is acknowledged (polled tightly: the file takes
# only a few seconds).
deadline=$((SECONDS + 60))
until [ "$(acked 2>/dev/null || echo 0)" -gt $((BIG / 10)) ]; do
        [ $SECONDS -lt $deadline ] || fail "timed out waiting for the big file to be taken"
        sleep 0.02
done
kill9 producer
kill9 rs-files
A=$(acked)
log "producer and JSONL consumer killed; the big file acknowledged up to line $A of $((BIG + 1))"
[ "$A" -lt $((BIG + 1)) ] || fail "the producer finished before it was killed: raise EXB_FILES_ROWS"
start producer "$EXBUS" producer -c "$T/producer.conf"
start rs-files "$EXBUS" consumer -c "$T/rs-files.conf"
wait_for "big file moved to done/" 120 test -f "$DROP/done/person-big.csv"
TOTAL=$((15 + BIG))
wait_rows "$RS" $RES $TOTAL 120
check "every event once at the SQLite subscriber" "$TOTAL" "$(sql "$RS" "SELECT count(*) FROM exb_events")"
check "every line of the big file arrived" "$BIG" \
        "$(sql "$RS" "SELECT count(*) FROM exb_events WHERE event_id LIKE 'GA-$HB-%'")"
check "no .rejects for the big file" "no" "$([ -f "$DROP/done/person-big.csv.rejects" ] && echo yes || echo no)"

# Event ids on the ingest topic: kcat, then the Confluent frame and the
# envelope (op enum, event_id string) parsed here.
kcat -C -b "$EXBUS_BROKERS" -t "exb.ingest.GA.$RES" -e -o beginning -q -f '%R%s' 2>/dev/null |
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
    _, p = varint(v, 5)
    ln, p = varint(v, p)
    print(v[p:p + ln].decode())
' >"$T/ingest.txt"
dups_before() { # lines <= A of the big file published more than once
        grep "^GA-$HB-" "$T/ingest.txt" | awk -F- -v a="$A" '$3 <= a' | sort | uniq -d | wc -l
}
check "no line acknowledged before the kill published again" "0" "$(dups_before)"
check "every big-file line on the ingest topic" "$BIG" "$(grep "^GA-$HB-" "$T/ingest.txt" | sort -u | wc -l)"
log "$(($(grep -c "^GA-$HB-" "$T/ingest.txt") - BIG)) line(s) in flight at the kill were sent again (same event ids)"

# The JSONL subscriber: every delivered Kafka record exactly once, in
# complete files only, once the consumer stops.
DELIVERED=$(kcat -C -b "$EXBUS_BROKERS" -t "exb.deliver.RS.$RES" -e -o beginning -q -f 'x\n' 2>/dev/null | grep -c x)
jsonl_lines() { cat "$OUT/$RES"/*.jsonl "$OUT/$RES"/*.part 2>/dev/null | wc -l; }
wait_for "the JSONL subscriber caught up" 120 sh -c "[ \$(cat '$OUT/$RES'/*.jsonl '$OUT/$RES'/*.part 2>/dev/null | wc -l) -ge $DELIVERED ]"
stop producer router rs rs-files
check "no .part file left after a clean stop" "0" "$(ls "$OUT/$RES" | grep -c '\.part$' || true)"
python3 - "$OUT/$RES" "$DELIVERED" "$HB" "$BIG" >"$T/jsonl-check.txt" <<'EOF'
import glob, json, sys
d, delivered, hb, big = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
seen, events, files = set(), set(), sorted(glob.glob(d + "/*.jsonl"))
dup = 0
for f in files:
    for line in open(f):
        r = json.loads(line)
        k = (r["partition"], r["offset"])
        dup += k in seen
        seen.add(k)
        events.add(r["event_id"])
print(len(files) > 1, dup, len(seen) == delivered,
      sum(1 for e in events if e.startswith("GA-%s-" % hb)) == big)
EOF
check "JSONL: rotated files, no record twice, all delivered, every big-file line" \
        "True 0 True True" "$(cat "$T/jsonl-check.txt")"
finish
