#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for N seconds, starting from the
# seed corpus in tests/fuzz/corpus/<target>/ (copied: the repository corpus
# stays small). Fails on the first crash, leak, timeout or sanitizer report.
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS
set -euo pipefail
build=$(cd "${1:?build dir}" && pwd)
secs=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
found=0
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  found=$((found + 1))
  mkdir -p "$work/$name"
  if [ -d "$root/tests/fuzz/corpus/$name" ]; then cp -r "$root/tests/fuzz/corpus/$name/." "$work/$name/"; fi
  echo "-- $name for ${secs}s"
  if ! (cd "$work" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
          -print_final_stats=1 "$work/$name" > "$work/$name.log" 2>&1); then
    tail -60 "$work/$name.log"
    echo "FUZZ FAILURE: $name (artifacts in $work were kept)"; trap - EXIT; exit 1
  fi
  grep -E "stat::number_of_executed_units|Done " "$work/$name.log" | tail -2
done
[ "$found" -gt 0 ] || { echo "no fuzz targets in $build"; exit 1; }
echo "fuzz: $found targets ran ${secs}s each without a finding"
