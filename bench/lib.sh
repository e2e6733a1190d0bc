# bench/lib.sh - helpers shared by bench/run.sh and bench/proxy.sh (sourced).
# Needs: $run (a scratch folder) and $CONNS.

# on-CPU nanoseconds of a process (all its threads), from schedstat
cpu_ns() { local s=0 ns t; for t in /proc/"$1"/task/*/schedstat; do read -r ns _ < "$t"; s=$((s + ns)); done; echo "$s"; }

# wrk prints one machine-readable line through this script
write_report_lua() {
  cat > "$run/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %d %d %d\n", summary.requests / summary.duration * 1e6,
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
LUA
}

# wrk_run PORT/PATH DURATION -> "rps p50_us p99_us errors" (wrk pinned to CPU 0)
# (WRK_HEADER, when set, is sent with every request)
wrk_run() { taskset -c 0 wrk -t1 -c"$CONNS" -d"$2" --latency ${WRK_HEADER:+-H "$WRK_HEADER"} -s "$run/report.lua" "http://127.0.0.1:$1" | awk '/^RESULT/ {print $2, $3, $4, $5}'; }

# med TSV TARGET COLUMN -> median of the column over the target's rows
med() { awk -F'\t' -v t="$2" -v k="$3" 'NR>1 && $2==t {print $k}' "$1" | sort -g |
        awk '{v[NR]=$1} END{if (NR==0) {print "NA"; exit} print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
