#!/usr/bin/env bash
# Server render time of every dashboard page: signs in with an admin token
# and times each page with curl (time_total on loopback), 5 runs each after
# one first request, and prints the median. The first request of the first
# page waits until the server has read the stored history into its warm
# model (started at `serve`); it is printed separately. Then the API's
# metric endpoints and the server's peak RSS.
#
# Usage: bench/dashboard.sh DIR [TANDEM_BIN]
#   DIR holds tandem.toml and tandem.db, e.g. made by
#   `tandem demo --scale medium --seed 7 --anchor 2026-11-23`.
#   TANDEM_BIN defaults to the release build in $CARGO_TARGET_DIR.
set -euo pipefail
dir=${1:?usage: bench/dashboard.sh DIR [TANDEM_BIN]}
bin=${2:-${CARGO_TARGET_DIR:-/var/cache/tandem-target}/release/tandem}
t() { "$bin" --playbook "$dir/tandem.toml" --database-url "$dir/tandem.db" "$@"; }
token=$(t token create --role admin --name "bench-$$" 2>/dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The binary itself, not through `t`: $! must be the server for its RSS.
"$bin" --playbook "$dir/tandem.toml" --database-url "$dir/tandem.db" serve --bind "127.0.0.1:$port" 2>/dev/null &
pid=$!
jar=$(mktemp)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$jar"; t token revoke "bench-$$" 2>/dev/null' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
csrf=$(curl -s -c "$jar" -b "$jar" "$base/login" | grep -o 'name="csrf" value="[^"]*' | cut -d'"' -f4)
curl -s -c "$jar" -b "$jar" -o /dev/null --data-urlencode "token=$token" -d "csrf=$csrf" "$base/login"
# On a large history the first requests time out while the history is
# read; ask again until the page is served.
started=$(date +%s.%N)
for _ in $(seq 1 120); do
  first=$(curl -s -b "$jar" -o /dev/null -w '%{http_code} %{time_total}' "$base/")
  [ "${first%% *}" = 200 ] && break
done
echo "first request (reads the history): / $first s; served after $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s"
printf '%-14s %6s %10s  %s\n' page status median_ms runs_ms
for p in / /waterfall "/waterfall?source=paid_search&period=quarter" /sla /stalled /attribution /plan /gaps /feedback /weekly /targets /playbook; do
  curl -s -b "$jar" -o /dev/null "$base$p"   # warm-up
  runs=()
  code=""
  for _ in 1 2 3 4 5; do
    read -r code s < <(curl -s -b "$jar" -o /dev/null -w '%{http_code} %{time_total}\n' "$base$p")
    runs+=("$(python3 -c "print(round($s*1000))")")
  done
  median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p)
  printf '%-14s %6s %10s  %s\n' "$p" "$code" "$median" "${runs[*]}"
done

# The API's metric endpoints on the same warm history (median of 5 after one
# warm-up), and the server's peak RSS.
printf '%-32s %6s %10s  %s\n' endpoint status median_ms runs_ms
for p in scorecard sla stalled "waterfall?by=source" gaps goals; do
  url="$base/api/v1/metrics/$p"
  [ "$p" = goals ] && url="$base/api/v1/goals"
  curl -s -H "Authorization: Bearer $token" -o /dev/null "$url"
  runs=()
  for _ in 1 2 3 4 5; do
    read -r code s < <(curl -s -H "Authorization: Bearer $token" -o /dev/null -w '%{http_code} %{time_total}\n' "$url")
    runs+=("$(python3 -c "print(round($s*1000))")")
  done
  median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p)
  printf '%-32s %6s %10s  %s\n' "/api/v1/${p}" "$code" "$median" "${runs[*]}"
done
echo "tandem serve peak RSS: $(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status") MiB; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
