#!/usr/bin/env bash
# Installs the Debian packages exbus needs to build and test, only those
# missing. Run as root (or with sudo available) on Debian 12.
set -euo pipefail
PKGS=(build-essential cmake pkg-config
      librdkafka-dev libavro-dev libjansson-dev libcurl4-openssl-dev libsqlite3-dev libssl-dev
      libcmocka-dev sqlite3 kcat python3 python3-venv valgrind
      openjdk-17-jre-headless maven) # Java + Maven: the real Kafka of the tests (test/kafka/kafka.sh)
missing=()
for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
