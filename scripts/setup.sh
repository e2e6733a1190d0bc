#!/usr/bin/env bash
# Installs every Debian package Portico's build, tests and benchmarks need.
# Idempotent: packages already present are left alone; runs apt-get update only
# when something is missing.  Usage: scripts/setup.sh [--bench]
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
  libuv1-dev node-llhttp libssl-dev libyaml-dev libcmocka-dev libsqlite3-dev sqlite3 libpq-dev libmariadb-dev liblua5.4-dev
  libcurl4-openssl-dev libxml2-dev libsodium-dev
  # tests
  python3-pytest python3-requests openssl curl valgrind iproute2
  postgresql mariadb-server   # tests start their own throwaway servers
  python3-jsonschema python3-zeep nodejs   # contract checks (zeep: a real SOAP client)
  libxml2-utils python3-xmlschema   # xmllint, and the WSDL/SOAP/XSD schemas it checks against
  python3-jwt python3-cryptography  # a real JWT library signs the tokens the auth tests present
  chromium   # headless browser for the admin console test (tests/browser, driven by playwright-core)
  prometheus python3-yaml   # a real Prometheus scrapes /metrics and runs the documented rules and
                            # dashboard queries; promtool checks them (tests/e2e/test_metrics.py)
  # benchmarks (bench/run.sh and ../shared/bench/peers.sh)
  nginx wrk util-linux procps
)
if [ "${1:-}" = "--bench" ]; then PKGS+=(haproxy caddy); fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
contracts() {
  # npm test tools. Third-party validators for the generated contracts (npm registry), pinned by
  # tests/contracts/package-lock.json; installed once into tests/contracts/node_modules
  local dir; dir="$(cd "$(dirname "$0")/.." && pwd)/tests/contracts"
  if [ ! -d "$dir/node_modules/@apidevtools/swagger-parser" ] || [ ! -d "$dir/node_modules/soap" ]; then
    command -v npm >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends npm
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  # playwright-core drives Debian's chromium (no browser download), pinned by
  # tests/browser/package-lock.json
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  if [ ! -d "$dir/node_modules/playwright-core" ]; then
    command -v npm >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends npm
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  contracts
  exit 0
fi
echo "setup: installing ${missing[*]}"
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Database and web server packages must not start system daemons: the tests
# start their own on ephemeral ports (policy-rc.d 101 = "do not start").
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy"
  own_policy=1
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
contracts
# Debian's nginx package starts a system nginx on :80; the project never uses it.
if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null; then
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
fi
