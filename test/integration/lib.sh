# lib.sh — shared helpers of the integration tests (sourced, bash).
#
# Each test starts its own processes: an embedded broker (`exbus broker`)
# unless EXBUS_TEST_BROKERS points at a real Kafka, then the roles it needs,
# and asserts on what arrived (rows in a subscriber's SQLite database, bytes
# on a topic, exit codes). Everything runs under a temporary directory that
# is removed on success and kept (path printed) on failure.
#
# A real Kafka (test/kafka/kafka.sh; test/run.sh runs the suite a second time
# against one) is shared by all the tests, one after the other (ctest runs
# them serially), while each test expects an exchange of its own: so
# start_broker first deletes every exb.* topic and every consumer group and
# creates exb.control and exb.audit afresh (test/kafka/kadmin.py reset), as a
# new embedded broker would have them.
#   EXBUS_TEST_BROKERS       PLAINTEXT bootstrap of the real Kafka (its clients
#                            are a super user)
#   EXBUS_TEST_BROKERS_SASL  its SASL_PLAINTEXT (SCRAM-SHA-512) bootstrap, for
#                            tests that authenticate as departments (add_scram_user)
# A test that can only prove something on one kind of broker says so at its
# top with embedded_only REASON or real_broker_only REASON: on the other kind
# it exits 77, which ctest reports as "Skipped" with the reason in its output.
set -euo pipefail

: "${EXBUS:?EXBUS must name the exbus binary}"
EXB_SRC=${EXB_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
EXB_BIN_DIR=$(cd "$(dirname "$EXBUS")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/exbus-it.XXXXXX")
PIDS=()
PASSED=0
FAILED=0
export EXBUS_MASK_SECRET=${EXBUS_MASK_SECRET:-integration-test-secret-0123}

cleanup() {
        local rc=$?
        for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        if [ $rc -eq 0 ] && [ $FAILED -eq 0 ]; then
                rm -rf "$T"
        else
                echo "test files kept in $T" >&2
                for f in "$T"/*.log; do
                        [ -f "$f" ] && { echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; }
                done
        fi
}
trap cleanup EXIT

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

fail() {
        echo "FAIL: $*" >&2
        FAILED=$((FAILED + 1))
        echo "$PASSED passed, $FAILED failed"
        exit 1
}

# check DESCRIPTION EXPECTED ACTUAL
check() {
        if [ "$2" == "$3" ]; then
                PASSED=$((PASSED + 1))
                log "ok: $1"
        else
                fail "$1: expected [$2], got [$3]"
        fi
}

finish() { echo "$PASSED passed, $FAILED failed"; }

exbus() { "$EXBUS" "$@"; }

# sqlite3 — the CLI, waiting up to 10 s for a lock: a test's own writes to a
# source database race with the producer agent capturing changes from it
# (without a busy timeout the CLI fails at once with "database is locked").
sqlite3() { command sqlite3 -cmd '.timeout 10000' "$@"; }

# sql DB QUERY — prints the result (sqlite3 CLI, list mode, '|' separated).
sql() { sqlite3 -batch "$1" "PRAGMA busy_timeout=5000; $2" | sed '/^5000$/d'; }

# wait_for DESCRIPTION TIMEOUT_S COMMAND... — polls until COMMAND succeeds.
wait_for() {
        local what=$1 timeout=$2
        shift 2
        local deadline=$((SECONDS + timeout))
        until "$@" >/dev/null 2>&1; do
                [ $SECONDS -lt $deadline ] || fail "timed out after ${timeout}s waiting for: $what"
                sleep 0.2
        done
}

# start NAME COMMAND... — runs in the background, log in $T/NAME.log, pid in PID_NAME.
start() {
        local name=$1
        shift
        "$@" >>"$T/$name.log" 2>&1 &
        local pid=$!
        PIDS+=("$pid")
        printf -v "PID_${name//-/_}" '%s' "$pid"
}

# kill9 NAME — kill -9 of a role started with `start`.
kill9() {
        local var="PID_${1//-/_}"
        kill -9 "${!var}" 2>/dev/null || true
        wait "${!var}" 2>/dev/null || true
}

# wait_exit NAME SECONDS — waits for role NAME (started with `start`) to exit
# by itself, failing the test if it still runs after SECONDS; its exit status
# is then in EXIT_STATUS.
wait_exit() {
        local var="PID_${1//-/_}" deadline=$((SECONDS + $2))
        while kill -0 "${!var}" 2>/dev/null; do
                [ $SECONDS -lt $deadline ] || fail "$1 still running after $2 s (a hang)"
                sleep 0.2
        done
        EXIT_STATUS=0
        wait "${!var}" || EXIT_STATUS=$?
}

# real_broker — true when the tests run against a real Kafka.
real_broker() { [ -n "${EXBUS_TEST_BROKERS:-}" ]; }

# skip REASON — exit 77: ctest reports the test as skipped (SKIP_RETURN_CODE).
skip() {
        echo "SKIPPED: $*"
        trap - EXIT
        rm -rf "$T"
        exit 77
}
# embedded_only REASON / real_broker_only REASON — at the top of a test that
# proves nothing (or cannot run) on the other kind of broker.
embedded_only() { real_broker && skip "embedded broker only: $*" || true; }
real_broker_only() { real_broker || skip "real Kafka only (EXBUS_TEST_BROKERS unset): $*"; }

# start_broker — embedded broker (or EXBUS_TEST_BROKERS); exports EXBUS_BROKERS.
# On a real Kafka, first resets the exchange (see the top of this file).
start_broker() {
        if real_broker; then
                export EXBUS_BROKERS=$EXBUS_TEST_BROKERS
                python3 "$EXB_SRC/test/kafka/kadmin.py" reset "$EXBUS_BROKERS" >"$T/reset.log" 2>&1 ||
                        { cat "$T/reset.log" >&2; fail "cannot reset the real Kafka at $EXBUS_BROKERS"; }
                return
        fi
        start broker "$EXBUS" broker --data-dir "$T/broker"
        wait_for "embedded broker bootstrap" 20 test -s "$T/broker/bootstrap"
        export EXBUS_BROKERS=$(cat "$T/broker/bootstrap")
}

# add_scram_user NAME PASSWORD — a SCRAM-SHA-512 principal on the real Kafka
# (log in through EXBUS_TEST_BROKERS_SASL); the password is passed in the
# environment, never on a command line.
add_scram_user() {
        real_broker || fail "add_scram_user needs a real Kafka (EXBUS_TEST_BROKERS)"
        EXB_KAFKA_PASSWORD=$2 python3 "$EXB_SRC/test/kafka/kadmin.py" add-user "$EXBUS_TEST_BROKERS" "$1" >/dev/null
}

# row_count DB TABLE — rows in TABLE (0 if the table does not exist yet).
row_count() {
        sqlite3 -batch "$1" "PRAGMA busy_timeout=5000; SELECT count(*) FROM \"$2\"" 2>/dev/null | tail -n1 || echo 0
}

# wait_rows DB TABLE N TIMEOUT — until TABLE has exactly N rows.
wait_rows() {
        local deadline=$((SECONDS + $4)) n=0
        while :; do
                n=$(row_count "$1" "$2")
                [ "${n:-0}" == "$3" ] && return 0
                [ $SECONDS -lt $deadline ] || fail "$1 $2: expected $3 rows, have ${n:-0} after $4 s"
                sleep 0.3
        done
}

# Configuration files of the roles.
router_conf() { # FILE
        mkdir -p "$T/router"
        printf 'data.dir = %s\nbatch.size = 2000\n%s' "$T/router" "${EXB_ROUTER_CONF_EXTRA:-}" >"$1"
}
consumer_conf() { # FILE DEPT SINK_DB
        mkdir -p "$T/consumer-$2"
        printf 'dept = %s\ndata.dir = %s\nsink.type = sqlite\nsink.path = %s\n' "$2" "$T/consumer-$2" "$3" >"$1"
}
producer_conf() { # FILE DEPT SOURCE_DB TABLE=RESOURCE...
        local f=$1 dept=$2 db=$3
        shift 3
        mkdir -p "$T/producer-$dept"
        printf 'dept = %s\ndata.dir = %s\nsource.type = sqlite\nsource.path = %s\npoll.interval.ms = 50\n' \
                "$dept" "$T/producer-$dept" "$db" >"$f"
        for m in "$@"; do printf 'source.table.%s = %s\n' "${m%%=*}" "${m#*=}" >>"$f"; done
}

# stop NAME... — SIGTERM, then the role must exit 0 (a clean shutdown: outputs
# flushed, offsets committed; under ASan also no leak and no error at exit).
stop() {
        local name var rc
        for name in "$@"; do
                var="PID_${name//-/_}"
                kill -TERM "${!var}" 2>/dev/null || true
        done
        for name in "$@"; do
                var="PID_${name//-/_}"
                rc=0
                wait "${!var}" || rc=$?
                check "$name stops cleanly on SIGTERM" "0" "$rc"
        done
}
