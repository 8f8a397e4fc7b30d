#!/usr/bin/env bash
# The second README command: install what is missing, build, and run every
# test — unit (cmocka) and integration (real exbus processes on the embedded
# broker) — then the integration tests again on a real Apache Kafka
# (test/kafka/kafka.sh: KRaft, loopback; its artifacts are downloaded from
# Maven Central once and cached; the hostile-ingest and exactly-once tests
# also in the AddressSanitizer + UBSan build there), then the unit and
# integration tests under AddressSanitizer + UBSan and the unit tests under
# valgrind. Exits non-zero if anything fails, including a real Kafka that
# cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/install-deps.sh
export EXB_VENV=${EXB_VENV:-$PWD/.cache/venv}

echo "== build"
ops/build.sh build
echo "== unit and integration tests"
(cd build && ctest --output-on-failure)
echo "== AddressSanitizer + UBSan build"
ops/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DEXB_SANITIZE=ON
SAN_ENV=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1)

echo "== integration tests on a real Kafka"
KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/exbus-kafka.XXXXXX")
kafka_cleanup() { # stop it whatever happens; keep its logs if the run failed
        local rc=$?
        test/kafka/kafka.sh -d "$KAFKA_DIR" stop || true
        if [ $rc -eq 0 ]; then rm -rf "$KAFKA_DIR"; else echo "Kafka's files kept in $KAFKA_DIR" >&2; fi
}
trap kafka_cleanup EXIT
test/kafka/kafka.sh -d "$KAFKA_DIR" start >/dev/null # exits non-zero (and so does this run) if it cannot start
(export EXBUS_TEST_BROKERS=$(cat "$KAFKA_DIR/bootstrap") EXBUS_TEST_BROKERS_SASL=$(cat "$KAFKA_DIR/bootstrap.sasl")
 (cd build && ctest --output-on-failure -R '^integration[.]')
 # Under ASan + UBSan on the same Kafka: hostile ingest (10 MB values, more
 # than the embedded broker holds) and the transactional router killed and
 # restarted (40k rows: the code paths, not the volume). A role with a leak
 # or a memory error does not exit 0 on SIGTERM, which the tests check.
 cd build-asan && env "${SAN_ENV[@]}" EXB_EOS_ROWS=40000 \
        ctest --output-on-failure -R '^integration[.](0023|0025)-')
test/kafka/kafka.sh -d "$KAFKA_DIR" stop
rm -rf "$KAFKA_DIR"
trap - EXIT

echo "== AddressSanitizer + UBSan: unit and integration tests"
(cd build-asan && env "${SAN_ENV[@]}" ctest --output-on-failure)

echo "== valgrind: unit tests"
for t in build/test_*; do
        [ -x "$t" ] || continue
        (cd test/unit && valgrind -q --error-exitcode=99 --leak-check=full \
                --errors-for-leak-kinds=definite,indirect "../../$t" >/dev/null 2>"../../build/$(basename "$t").valgrind") ||
                { echo "valgrind: $t failed"; tail -n 30 "build/$(basename "$t").valgrind"; exit 1; }
        echo "valgrind clean: $(basename "$t")"
done
echo "== all tests passed"
