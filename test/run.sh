#!/usr/bin/env bash
# The second README command: install what is missing, build, and run every
# test — unit (cmocka) and integration (real exbus processes on the embedded
# broker) — then the unit tests again under AddressSanitizer + UBSan and
# under valgrind. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/install-deps.sh
export EXB_VENV=${EXB_VENV:-$PWD/.cache/venv}

echo "== build"
ops/build.sh build
echo "== unit and integration tests"
(cd build && ctest --output-on-failure)

echo "== AddressSanitizer + UBSan build: unit and integration tests"
ops/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DEXB_SANITIZE=ON
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --output-on-failure)

echo "== valgrind: unit tests"
for t in build/test_*; do
        [ -x "$t" ] || continue
        (cd test/unit && valgrind -q --error-exitcode=99 --leak-check=full \
                --errors-for-leak-kinds=definite,indirect "../../$t" >/dev/null 2>"../../build/$(basename "$t").valgrind") ||
                { echo "valgrind: $t failed"; tail -n 30 "build/$(basename "$t").valgrind"; exit 1; }
        echo "valgrind clean: $(basename "$t")"
done
echo "== all tests passed"
