#!/usr/bin/env bash
# The first README command: install what is missing, build, run `exbus demo`
# (every role in one process on the embedded broker).
set -euo pipefail
cd "$(dirname "$0")/.."
ops/install-deps.sh
ops/build.sh build
exec build/exbus demo "$@"
