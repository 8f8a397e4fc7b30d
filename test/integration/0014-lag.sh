#!/usr/bin/env bash
# `exbus lag`, the operator's view of the consumer groups: before the router
# runs, the router group's lag is exactly the number of ingest records; once
# the router and the consumer agent have drained them, both groups show
# lag 0 with committed offsets. On a real Kafka the groups are described too:
# members with their client.id, every partition owned, and a second router
# instance takes a share of the partitions (issue #3). The embedded broker
# cannot describe groups: there `exbus lag` says so (described false) and
# still gives committed offsets and lag.
source "$(dirname "$0")/lib.sh"
N=300

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource 370600-GA-0001 \
        --items id_number,name,region --purpose "参保身份核验")
exbus sub approve "$SUB" >/dev/null

# lagq JQ_FILTER [exbus lag options] — runs `exbus lag --json` and applies the filter.
lagq() {
        local f=$1
        shift
        exbus lag --json "$@" | jq -r "$f"
}
group_lag() { lagq ".[] | select(.group == \"$1\") | .lag"; }
is_lag() { [ "$(group_lag "$1")" == "$2" ]; }

set +e
exbus lag --group exbus-router extra >/dev/null 2>&1
rc=$?
set -e
check "a stray argument is a usage error" "2" "$rc"

SRC=$T/ga.db RS=$T/rs.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
producer_conf "$T/producer.conf" GA "$SRC" person=370600-GA-0001
start producer "$EXBUS" producer -c "$T/producer.conf"
wait_for "producer installed its triggers" 20 \
        sh -c "sqlite3 '$SRC' \"SELECT name FROM sqlite_master WHERE name='exb_person_ins'\" | grep -q ."
python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" "$N"
wait_for "the producer's changelog drained" 60 \
        sh -c "[ \"\$(sqlite3 '$SRC' 'SELECT count(*) FROM exb_changelog')\" = 0 ]"

# Before any router ran: the whole ingest backlog, nothing committed, nobody assigned.
INGEST='exb.ingest.GA.370600-GA-0001'
check "router group listed before it ever ran" "1" \
        "$(lagq '[.[] | select(.group == "exbus-router")] | length')"
check "consumer group of RS listed before it ever ran" "1" \
        "$(lagq '[.[] | select(.group == "exbus-consumer-RS")] | length')"
check "router lag = ingest records" "$N" "$(group_lag exbus-router)"
check "--group gives the same lag" "$N" "$(lagq '.[0].lag' --group exbus-router)"
check "ingest partitions' end - low = records" "$N" \
        "$(lagq "[.[0].partitions[] | select(.topic == \"$INGEST\") | .end - .low] | add" --group exbus-router)"
check "offset lag = lag (no transaction markers on ingest)" "$N" \
        "$(lagq '[.[0].partitions[].offset_lag] | add' --group exbus-router)"
check "nothing committed yet" "0" \
        "$(lagq '[.[0].partitions[] | select(.committed != null)] | length' --group exbus-router)"
check "table header shows the lag" "yes" \
        "$(exbus lag --group exbus-router | grep -q "^GROUP exbus-router .* lag $N" && echo yes)"
check "table has a row per ingest partition with records" "yes" \
        "$(exbus lag --group exbus-router | grep -Eq "^  $INGEST +[0-9]+ +- +[0-9]+ +[0-9]+ " && echo yes)"
check "an unknown group is empty, not an error" "0|0" \
        "$(lagq '.[0] | "\(.lag)|\(.partitions | length)"' --group exbus-nosuch)"
if real_broker; then
        check "a group that never ran is Dead" "Dead" "$(lagq '.[0].state' --group exbus-router)"
else
        check "embedded broker: groups not described" "false|unknown" \
                "$(lagq '.[0] | "\(.described)|\(.state)"' --group exbus-router)"
fi

router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$RS"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"
wait_rows "$RS" 370600-GA-0001 "$N" 120
wait_for "router group lag 0" 60 is_lag exbus-router 0
wait_for "consumer group lag 0" 60 is_lag exbus-consumer-RS 0
check "router committed every ingest partition with records" "0" \
        "$(lagq "[.[0].partitions[] | select(.topic == \"$INGEST\" and .end > .low and .committed == null)] | length" --group exbus-router)"
check "consumer group committed on every delivery partition with records" "0" \
        "$(lagq '[.[0].partitions[] | select(.end > .low and .committed == null)] | length' --group exbus-consumer-RS)"
check "consumer group listed with lag 0" "0" "$(group_lag exbus-consumer-RS)"

if real_broker; then
        check "router group is Stable with one member" "Stable|1" \
                "$(lagq '.[0] | "\(.state)|\(.members | length)"' --group exbus-router)"
        check "member's client.id names the router" "yes" \
                "$(lagq '.[0].members[0].client_id | if startswith("exbus-router") then "yes" else . end' --group exbus-router)"
        check "every ingest partition has an owner" "0" \
                "$(lagq '[.[0].partitions[] | select(.owner == null)] | length' --group exbus-router)"
        check "consumer group has its member" "1" \
                "$(lagq '.[0].members | length' --group exbus-consumer-RS)"

        # A second router instance shares the partitions (issue #3).
        mkdir -p "$T/router2"
        printf 'data.dir = %s\nbatch.size = 2000\n' "$T/router2" >"$T/router2.conf"
        start router2 "$EXBUS" router -c "$T/router2.conf"
        two_owners() {
                [ "$(lagq '[.[0].partitions[].owner.client_id] | unique | length' --group exbus-router)" == 2 ]
        }
        wait_for "two router instances own partitions" 60 two_owners
        check "two members, distinct client.ids" "2|2" \
                "$(lagq '.[0] | "\(.members | length)|\([.members[].client_id] | unique | length)"' --group exbus-router)"
        check "members' partition counts add up to the owned partitions" "yes" \
                "$(lagq '.[0] | if ([.members[].partitions] | add) == ([.partitions[] | select(.owner != null)] | length) then "yes" else "no" end' --group exbus-router)"
        python3 "$EXB_SRC/test/integration/gen.py" person "$SRC" 100 --start "$N"
        wait_rows "$RS" 370600-GA-0001 $((N + 100)) 120
        wait_for "router group lag 0 with two instances" 60 is_lag exbus-router 0
        stop router2
fi
stop router rs producer
finish
