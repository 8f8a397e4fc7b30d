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
(cd build && ctest --output-on-failure -R '^unit\.' -T memcheck >/dev/null || true)
bad=0
for f in build/Testing/Temporary/MemoryChecker.*.log; do
        [ -f "$f" ] || continue
        if grep -qE "(definitely|indirectly) lost: [1-9]|ERROR SUMMARY: [1-9]|Invalid (read|write)" "$f"; then
                echo "valgrind: $f"; grep -E "lost:|ERROR SUMMARY|Invalid" "$f" | head; bad=1
        fi
done
[ $bad -eq 0 ] || { echo "valgrind found errors"; exit 1; }
echo "== all tests passed"
