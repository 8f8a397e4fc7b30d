#!/usr/bin/env bash
# 0001-avro-interop: exbus's Avro schemas and codec against Apache Avro (Python).
#
# Runs test/integration/avro_interop.py with the exb_codec_tool built next to
# the exbus binary. Apache Avro (PyPI `avro`) is installed into the virtualenv
# $EXB_VENV (default: <source dir>/.cache/venv) on first use.
# Env (set by ctest): EXBUS = path of the exbus binary, EXB_SRC = source dir.
set -euo pipefail

: "${EXBUS:?EXBUS must name the exbus binary (ctest sets it)}"
EXB_SRC=${EXB_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
export EXB_VENV=${EXB_VENV:-$EXB_SRC/.cache/venv}

if [ -n "${EXBUS_TEST_BROKERS:-}" ]; then
        # ctest reports exit 77 as skipped (SKIP_RETURN_CODE), with this reason in its output.
        echo "SKIPPED: uses no broker (codec against Apache Avro): already run in the embedded-broker suite"
        exit 77
fi
tool="$(dirname "$EXBUS")/exb_codec_tool"
if [ ! -x "$tool" ]; then
        echo "0001-avro-interop: $tool not found: build the exb_codec_tool target" >&2
        exit 1
fi

exec python3 "$EXB_SRC/test/integration/avro_interop.py" "$tool"
