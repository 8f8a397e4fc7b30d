#!/usr/bin/env bash
# The exchange's topics deleted under a running router and consumer (an
# operator resetting a cluster): SIGTERM still ends both. librdkafka 2.0.2
# hangs for ever in rd_kafka_destroy() after such a deletion; the roles then
# exit with status 3 once EXBUS_SHUTDOWN_TIMEOUT_S has passed (5 s here).
source "$(dirname "$0")/lib.sh"
real_broker_only "topic deletion: the embedded broker cannot delete topics"
export EXBUS_SHUTDOWN_TIMEOUT_S=5

start_broker
exbus catalog import "$EXB_SRC/ops/examples/catalog.json" >/dev/null
SUB=$(exbus sub request --subscriber RS --resource 370600-GA-0001 --items id_number,name --purpose "核验")
exbus sub approve "$SUB" >/dev/null
router_conf "$T/router.conf"
consumer_conf "$T/rs.conf" RS "$T/rs.db"
start router "$EXBUS" router -c "$T/router.conf"
start rs "$EXBUS" consumer -c "$T/rs.conf"
wait_for "the consumer's group assignment" 30 grep -q "assigned exb.deliver.RS" "$T/rs.log"
python3 "$EXB_SRC/test/kafka/kadmin.py" delete-topics "$EXBUS_BROKERS" >"$T/deleted.log"
sleep 6 # the clients notice: partitions gone, subscriptions empty

# ends NAME — after SIGTERM, NAME exits within 20 s with 0 (a clean
# shutdown) or 3 (the deadline), never hangs.
ends() {
        wait_exit "$1" 20
        log "$1 exited with status $EXIT_STATUS"
        check "$1 ends after SIGTERM with status 0 or 3" "yes" \
                "$(case $EXIT_STATUS in 0 | 3) echo yes ;; *) echo "$EXIT_STATUS" ;; esac)"
}
kill -TERM "$PID_router" "$PID_rs"
ends router
ends rs
finish
