# faults_lib.sh — helpers of the fault-injection tests (0021-0023), sourced
# after lib.sh. Additions to lib.sh kept here so they do not disturb other
# tests; see faults_kafka.py for the independent Kafka/SQLite probes.

FAULTS_PY="$EXB_SRC/test/integration/faults_kafka.py"
KAFKA_SH="$EXB_SRC/test/kafka/kafka.sh"

# fk ARGS... — faults_kafka.py (confluent-kafka + Apache Avro from $EXB_VENV).
fk() { python3 "$FAULTS_PY" "$@"; }

# at_exit COMMAND — run COMMAND (eval) when the test exits, before lib.sh's
# cleanup (which kills the roles and removes $T): undo a fault, stop a Kafka.
FAULTS_AT_EXIT=()
at_exit() { FAULTS_AT_EXIT+=("$1"); }
faults_cleanup() {
        local rc=$? c
        set +e
        for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
        for c in "${FAULTS_AT_EXIT[@]}"; do eval "$c" >/dev/null 2>&1; done
        (exit $rc)
        cleanup
}
trap faults_cleanup EXIT

# alive NAME — the role started with `start NAME` is still running.
alive() {
        local var="PID_${1//-/_}"
        kill -0 "${!var}" 2>/dev/null
}

# wait_alive DESCRIPTION TIMEOUT "ROLE..." COMMAND... — wait_for, failing at
# once (not at the timeout) when one of the roles started with `start` dies.
wait_alive() {
        local what=$1 timeout=$2 roles=$3 r
        shift 3
        local deadline=$((SECONDS + timeout))
        until "$@" >/dev/null 2>&1; do
                for r in $roles; do alive "$r" || fail "$r died while waiting for: $what"; done
                [ $SECONDS -lt $deadline ] || fail "timed out after ${timeout}s waiting for: $what"
                sleep 0.3
        done
}

# rows_are DB TABLE N — TABLE has exactly N rows (for wait_alive).
rows_are() { [ "$(row_count "$1" "$2")" = "$3" ]; }

# is VALUE COMMAND... — COMMAND prints VALUE (for wait_for).
is() { [ "$("${@:2}")" = "$1" ]; }

# own_kafka_start — a Kafka of this test alone in $T/kafka (test/kafka/kafka.sh;
# a second call restarts the same broker, same ports, same data), stopped
# whatever happens when the test exits; exports EXBUS_BROKERS. The first call
# also creates exb.control and exb.audit, as start_broker does.
own_kafka_start() {
        local first=0
        [ -f "$T/kafka/server.properties" ] || first=1
        [ $first = 0 ] || at_exit '"$KAFKA_SH" -d "$T/kafka" stop'
        EXB_KAFKA_HEAP=${EXB_KAFKA_HEAP:--Xmx384m -Xms128m} "$KAFKA_SH" -d "$T/kafka" start >"$T/kafka-start.out" 2>&1 ||
                { tail -n 20 "$T/kafka-start.out" >&2; fail "own Kafka did not start (see $T/kafka)"; }
        export EXBUS_BROKERS=$(cat "$T/kafka/bootstrap")
        if [ $first = 1 ]; then
                python3 "$EXB_SRC/test/kafka/kadmin.py" reset "$EXBUS_BROKERS" >"$T/reset.log" 2>&1 ||
                        { cat "$T/reset.log" >&2; fail "cannot create the exchange topics on the own Kafka"; }
        fi
}

# own_kafka_stop — a controlled shutdown of the test's own Kafka (data kept).
own_kafka_stop() {
        "$KAFKA_SH" -d "$T/kafka" stop >>"$T/kafka-stop.out" 2>&1 || fail "own Kafka did not stop cleanly"
}
