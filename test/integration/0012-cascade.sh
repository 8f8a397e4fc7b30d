#!/usr/bin/env bash
# Cascade (级联) and return flow (回流) across three exchange nodes, each
# with its own broker: county 370602 -> city 370600 -> province 370000, and
# province -> city -> county. Plus a deliberate loop (the city sends the
# county's own data back down), stopped after one hop and counted, and the
# province's broker going down and coming back while data flows: forwarding
# pauses and resumes in order without loss.
source "$(dirname "$0")/lib.sh"
embedded_only "three nodes need three brokers (and SIGUSR1/SIGUSR2 of exbus broker to take one down): it always runs on embedded ones"

node() { # NAME — an embedded broker for one node; prints its bootstrap list
        start "broker-$1" "$EXBUS" broker --data-dir "$T/$1"
        wait_for "$1 broker" 20 test -s "$T/$1/bootstrap"
}
node county; node city; node province
C=$(cat "$T/county/bootstrap") M=$(cat "$T/city/bootstrap") P=$(cat "$T/province/bootstrap")

python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
person = {"code": "370602-GA-0001", "name": "芝罘区人口基本信息", "provider": "GA",
          "share_type": "unconditional", "key": ["id_number"],
          "items": [{"name": "id_number", "title": "公民身份号码", "type": "C", "length": 18,
                     "required": True, "check": "gb11643"},
                    {"name": "name", "title": "姓名", "type": "C", "length": 50, "required": True},
                    {"name": "region", "title": "行政区划代码", "type": "C", "length": 6},
                    {"name": "phone", "title": "联系电话", "type": "C", "length": 20}]}
stats = {"code": "370000-TJ-0001", "name": "分区人口统计", "provider": "TJ",
         "share_type": "unconditional", "key": ["region"],
         "items": [{"name": "region", "title": "行政区划代码", "type": "C", "length": 6, "required": True},
                   {"name": "population", "title": "常住人口", "type": "I"},
                   {"name": "year", "title": "年度", "type": "I"}]}
cats = {
    "county": {"departments": [{"code": "GA", "name": "芝罘区公安分局"}, {"code": "MZ", "name": "芝罘区民政局"},
                               {"code": "370600", "name": "烟台市交换节点"}], "resources": [person]},
    "city": {"departments": [{"code": "370602", "name": "芝罘区交换节点"},
                             {"code": "370000", "name": "山东省交换节点"}], "resources": []},
    "province": {"departments": [{"code": "TJ", "name": "省统计局"}, {"code": "SJ", "name": "省大数据局"},
                                 {"code": "370600", "name": "烟台市交换节点"},
                                 {"code": "370602", "name": "芝罘区交换节点"}], "resources": [stats]},
}
for n, c in cats.items():
    json.dump(c, open(f"{t}/{n}.json", "w"), ensure_ascii=False)
PY
for n in county city province; do
        eval "B=\$$(echo $n | sed 's/county/C/;s/city/M/;s/province/P/')"
        exbus -b "$B" catalog import "$T/$n.json" >/dev/null
        mkdir -p "$T/router-$n"
        printf 'data.dir = %s\n' "$T/router-$n" >"$T/router-$n.conf"
        start "router-$n" "$EXBUS" -b "$B" router -c "$T/router-$n.conf"
done

# link NAME LOCAL_BROKERS DEPT NODE_ID OTHER_BROKERS — an uplink consumer agent.
link() {
        mkdir -p "$T/$1"
        printf 'dept = %s\ndata.dir = %s\nsink.type = uplink\nsink.node.id = %s\nsink.brokers = %s\nsink.timeout.ms = 3000\n' \
                "$3" "$T/$1" "$4" "$5" >"$T/$1.conf"
        start "$1" "$EXBUS" -b "$2" consumer -c "$T/$1.conf"
}
# sqlite_sink NAME BROKERS DEPT — a subscriber with its own database $T/NAME.db.
sqlite_sink() {
        mkdir -p "$T/$1"
        printf 'dept = %s\ndata.dir = %s\nsink.type = sqlite\nsink.path = %s\n' "$3" "$T/$1" "$T/$1.db" >"$T/$1.conf"
        start "$1" "$EXBUS" -b "$2" consumer -c "$T/$1.conf"
}
# wait_registered BROKERS CODE PROVIDER — until a node's catalog has the resource.
wait_registered() {
        wait_for "$2 from $3 in the catalog at $1" 90 sh -c \
                "'$EXBUS' -b '$1' catalog show '$2' --json 2>/dev/null | grep -q '\"provider\": \"$3\"'"
}

# Up: county GA -> (county approves 370600) -> city -> (city approves 370000) -> province SJ.
exbus -b "$C" sub request --subscriber 370600 --resource 370602-GA-0001 \
        --items id_number,name,region,phone --purpose "上报市级人口库" >/dev/null
SRC=$T/ga.db
sqlite3 "$SRC" "CREATE TABLE person(id_number TEXT PRIMARY KEY, name TEXT, region TEXT, phone TEXT)"
mkdir -p "$T/producer-GA"
printf 'dept = GA\ndata.dir = %s\nsource.path = %s\nsource.table.person = 370602-GA-0001\npoll.interval.ms = 50\n' \
        "$T/producer-GA" "$SRC" >"$T/producer-GA.conf"
start producer-ga "$EXBUS" -b "$C" producer -c "$T/producer-GA.conf"
link up-county "$C" 370600 370602 "$M"
link up-city "$M" 370000 370600 "$P"
sqlite_sink sj "$P" SJ
wait_for "GA producer ready" 20 sh -c "sqlite3 '$SRC' \"SELECT 1 FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q 1"
# have_people DB FROM TO — people FROM..TO are all at the subscriber DB.
have_people() {
        [ "$(sqlite3 "$1" "PRAGMA busy_timeout=5000; SELECT count(*) FROM \"370602-GA-0001\" WHERE
             CAST(substr(name, 3) AS INTEGER) BETWEEN $2 AND $3" 2>/dev/null | tail -n1)" = "$(($3 - $2 + 1))" ]
}
add_people() { # FROM TO
        for i in $(seq "$1" "$2"); do
                echo "INSERT INTO person VALUES('$(python3 "$EXB_SRC/test/integration/gen.py" id "$i")', '居民$i', '370602', '1390000$(printf %04d "$i")');"
        done | sqlite3 "$SRC"
}
# A subscription gets what is routed after its approval, and a node registers
# a resource at the next node with its first forwarded record: warm-up
# records 1 and 2 open the way, people 3..22 are what the province must get.
add_people 1 1
wait_registered "$M" 370602-GA-0001 370602
exbus -b "$M" sub request --subscriber 370000 --resource 370602-GA-0001 \
        --items id_number,name,region,phone --purpose "汇聚省级人口库" >/dev/null
sleep 2 # the city's router applies the approval between batches
add_people 2 2
wait_registered "$P" 370602-GA-0001 370600
exbus -b "$P" sub request --subscriber SJ --resource 370602-GA-0001 \
        --items id_number,name,region,phone --purpose "省级人口库" >/dev/null
sleep 2
add_people 3 22
wait_for "people 3..22 at the province" 120 have_people "$T/sj.db" 3 22
check "province got the county's records through the city" "yes" "$(have_people "$T/sj.db" 3 22 && echo yes)"
check "the province knows the data came from the city node" "370600" \
        "$(exbus -b "$P" catalog show 370602-GA-0001 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["resource"]["provider"])')"
check "the county's uplink marked it as an exchange node at the city" "1" \
        "$(exbus -b "$M" catalog show 370602-GA-0001 | grep -c '^provider: *370602 (an exchange node')"
check "the records carry the path county,city" "exb-path=370602,370600" \
        "$(timeout 20 kcat -C -b "$P" -t exb.ingest.370600.370602-GA-0001 -o beginning -e -c 1 -f '%h\n' 2>/dev/null)"

# An operator's catalog file says the county is not a node ("node": false).
# The county's uplink, restarted, marks it again before it forwards (its
# warm-up: person 1 changes, a record no later check depends on).
printf '{"departments":[{"code":"370602","name":"芝罘区交换节点","node":false}]}' >"$T/unmark.json"
exbus -b "$M" catalog import "$T/unmark.json" >/dev/null
check "the city no longer marks the county" "0" \
        "$(exbus -b "$M" catalog show 370602-GA-0001 | grep -c 'an exchange node')"
stop up-county
link up-county "$C" 370600 370602 "$M"
sqlite3 "$SRC" "UPDATE person SET phone = '13800000001' WHERE name = '居民1'"
wait_for "the county marked again at the city" 60 sh -c \
        "'$EXBUS' -b '$M' catalog show 370602-GA-0001 | grep -q 'an exchange node'"

# Return flow: province TJ -> (province approves 370600) -> city -> (city approves 370602) -> county MZ.
exbus -b "$P" sub request --subscriber 370600 --resource 370000-TJ-0001 \
        --items region,population,year --purpose "回流市级" >/dev/null
TJ=$T/tj.db
sqlite3 "$TJ" "CREATE TABLE stats(region TEXT PRIMARY KEY, population INTEGER, year INTEGER)"
mkdir -p "$T/producer-TJ"
printf 'dept = TJ\ndata.dir = %s\nsource.path = %s\nsource.table.stats = 370000-TJ-0001\npoll.interval.ms = 50\n' \
        "$T/producer-TJ" "$TJ" >"$T/producer-TJ.conf"
start producer-tj "$EXBUS" -b "$P" producer -c "$T/producer-TJ.conf"
link down-province "$P" 370600 370000 "$M"
link down-city "$M" 370602 370600 "$C"
sqlite_sink mz "$C" MZ
wait_for "TJ producer ready" 20 sh -c "sqlite3 '$TJ' \"SELECT 1 FROM sqlite_master WHERE name='exb_stats_ins'\" | grep -q 1"
sqlite3 "$TJ" "INSERT INTO stats VALUES('000001', 0, 0)" # warm-up
wait_registered "$M" 370000-TJ-0001 370000
exbus -b "$M" sub request --subscriber 370602 --resource 370000-TJ-0001 \
        --items region,population,year --purpose "回流区县" >/dev/null
sleep 2
sqlite3 "$TJ" "INSERT INTO stats VALUES('000002', 0, 0)" # warm-up
wait_registered "$C" 370000-TJ-0001 370600
exbus -b "$C" sub request --subscriber MZ --resource 370000-TJ-0001 \
        --items region,population,year --purpose "民政统计" >/dev/null
sleep 2
sqlite3 "$TJ" "INSERT INTO stats VALUES('370602', 500000, 2025), ('370611', 300000, 2025), ('370612', 200000, 2025)"
wait_for "the return flow at the county" 120 sh -c "[ \"\$(sqlite3 '$T/mz.db' \"SELECT count(*) FROM \\\"370000-TJ-0001\\\" WHERE region LIKE '3706%'\" 2>/dev/null)\" = 3 ]"
check "return flow reached the county" "500000" "$(sql "$T/mz.db" "SELECT population FROM \"370000-TJ-0001\" WHERE region='370602'")"

# A deliberate loop. Sending the county its own resource is refused by the
# catalog (a provider cannot subscribe to itself), so misconfigure it one
# level up: the province also links straight to the county and shares the
# county's data (provided there by the city) back down. exb-path stops it.
link loop-province "$P" 370602 370000 "$C"
exbus -b "$P" sub request --subscriber 370602 --resource 370602-GA-0001 \
        --items id_number,name,region,phone --purpose "误配置：省级直接回送区县本级数据" >/dev/null
sleep 2
add_people 23 27
wait_for "people 23..27 at the province" 60 have_people "$T/sj.db" 23 27
loops() { sqlite3 "$T/loop-province/consumer-370602-dlq.db" "SELECT count(*) FROM exb_dead_letters WHERE reason LIKE 'loop:%'" 2>/dev/null || echo 0; }
five_loops() { [ "$(loops)" = 5 ]; }
wait_for "the province's link stopped the 5 looped records" 60 five_loops
check "looped records are counted and kept with the reason" "5" "$(loops)"
check "the reason names the path" "1" "$(sqlite3 "$T/loop-province/consumer-370602-dlq.db" "SELECT count(DISTINCT reason) FROM exb_dead_letters WHERE reason LIKE 'loop: the record has passed 370602,370600%'")"
check "nothing came back into the county's ingest" "0" \
        "$(timeout 20 kcat -C -b "$C" -t exb.ingest.370000.370602-GA-0001 -o beginning -e -f 'x\n' 2>/dev/null | grep -c x || true)"
check "the county's catalog still has its own resource from GA only" "GA" \
        "$(exbus -b "$C" catalog show 370602-GA-0001 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["resource"]["provider"])')"

# The province's broker goes down while the county keeps publishing; then it comes back.
kill -USR1 "$PID_broker_province"
add_people 28 62
sleep 8 # the city's uplink fails its batches and retries, paused
check "nothing reached the province while it was down" "0" "$(sql "$T/sj.db" "SELECT count(*) FROM \"370602-GA-0001\" WHERE CAST(substr(name, 3) AS INTEGER) >= 28")"
kill -USR2 "$PID_broker_province"
wait_for "people 28..62 at the province after the outage" 120 have_people "$T/sj.db" 28 62
check "every record arrived after the outage" "0" "$(sqlite3 -batch "$T/sj.db" "ATTACH '$SRC' AS src;
        SELECT count(*) FROM src.person p LEFT JOIN \"370602-GA-0001\" s USING (id_number)
        WHERE p.name NOT IN ('居民1', '居民2') AND (s.id_number IS NULL OR s.name IS NOT p.name OR s.phone IS NOT p.phone)")"
sqlite3 "$SRC" "UPDATE person SET phone = '13800000000' WHERE id_number = '$(python3 "$EXB_SRC/test/integration/gen.py" id 30)'"
wait_for "an update after the outage" 60 sh -c "[ \"\$(sqlite3 '$T/sj.db' \"SELECT phone FROM \\\"370602-GA-0001\\\" WHERE name='居民30'\")\" = 13800000000 ]"
check "updates keep their order across the cascade" "13800000000" "$(sql "$T/sj.db" "SELECT phone FROM \"370602-GA-0001\" WHERE name='居民30'")"
stop up-county up-city down-province down-city loop-province sj mz producer-ga producer-tj router-county router-city router-province
finish
