#!/usr/bin/env bash
# Soak: `tandem serve` under a steady load on loopback for a bounded time,
# checking that no request fails and that memory stays flat. Not run in CI.
#
# wrk (apt-get install -y wrk) runs bench/track.lua (shared with
# bench/compare/ingest.sh) over SOAK_CONNECTIONS connections, each waiting a
# fixed delay between requests so the rate stays near SOAK_RATE per second;
# four requests in five are Segment `POST /v1/track` calls with unique
# messageIds for 500 people (each stores a touch and re-evaluates its
# person), one in five a GET (people page, funnel metric, touches page,
# /healthz) with an admin token. The server's RSS (VmRSS) is sampled every
# 10 s.
#
# Passes when: no non-2xx answer and no socket error, and the mean RSS of
# the last window is within SOAK_RSS_TOLERANCE (default 10%) of the mean of
# the second window, a window being a minute (a third of the run when the
# run is shorter than three minutes). The first window is warm-up.
#
# Usage: bench/soak.sh [DIR] [TANDEM_BIN]
#   DIR: a directory with tandem.toml and tandem.db (default: a fresh
#        `tandem demo --scale small` in a temp dir, removed afterwards).
#   TANDEM_BIN: default the release build in $CARGO_TARGET_DIR.
# Environment: SOAK_SECONDS (600), SOAK_RATE (100 requests/s),
#   SOAK_CONNECTIONS (4), SOAK_RSS_TOLERANCE (0.10), SOAK_OUT (directory for
#   rss.csv and wrk.txt; default a temp dir that is printed).
set -euo pipefail
bin=${2:-${CARGO_TARGET_DIR:-/var/cache/tandem-target}/release/tandem}
secs=${SOAK_SECONDS:-600}
rate=${SOAK_RATE:-100}
conns=${SOAK_CONNECTIONS:-4}
tol=${SOAK_RSS_TOLERANCE:-0.10}
out=${SOAK_OUT:-$(mktemp -d /tmp/tandem-soak.XXXXXX)}
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }
[ -x "$bin" ] || { echo "no tandem binary at $bin (cargo build --release -p tandem-cli)" >&2; exit 2; }
[ "$secs" -ge 30 ] || { echo "SOAK_SECONDS must be at least 30" >&2; exit 2; }

made=""
if [ -n "${1:-}" ]; then
  dir=$1
else
  dir=$(mktemp -d /tmp/tandem-soak-db.XXXXXX)
  made=$dir
  (cd "$dir" && "$bin" init >/dev/null 2>&1 && "$bin" demo --scale small >/dev/null 2>&1)
fi
t() { "$bin" --playbook "$dir/tandem.toml" --database-url "$dir/tandem.db" "$@"; }
token=$(t token create --role admin --name "soak-$$" 2>/dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Started directly (not through `t`) so $! is the server's own pid.
"$bin" --playbook "$dir/tandem.toml" --database-url "$dir/tandem.db" serve --bind "127.0.0.1:$port" 2>"$out/serve.log" &
pid=$!
sampler=""
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  t token revoke "soak-$$" >/dev/null 2>&1 || true
  [ -n "$made" ] && rm -rf "$made"
}
trap cleanup EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# Each connection waits this long between requests (latency comes on top).
delay_ms=$(( conns * 1000 / rate ))

echo "soak: ${secs}s at ~${rate}/s over ${conns} connections (delay ${delay_ms} ms) against pid $pid on $base; output in $out"
echo "seconds,rss_kb" >"$out/rss.csv"
start=$(date +%s)
(
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$(( $(date +%s) - start )),$rss" >>"$out/rss.csv"
    sleep 10
  done
) &
sampler=$!
TRACK_TOKEN=$token TRACK_RUN="soak-$start$$" TRACK_DELAY_MS=$delay_ms TRACK_GET_EVERY=5 \
  wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s --latency -s "$(dirname "$0")/track.lua" "$base" >"$out/wrk.txt" 2>"$out/wrk.err" || true
# One last sample after the load.
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
[ -n "$rss" ] && echo "$(( $(date +%s) - start )),$rss" >>"$out/rss.csv"
alive=yes
kill -0 "$pid" 2>/dev/null || alive=no

python3 - "$out" "$secs" "$tol" "$alive" <<'PY'
import sys
out, secs, tol, alive = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
stats = {}
for line in open(f"{out}/wrk.txt"):
    if line.startswith("TRACK "):
        _, k, v = line.split()
        stats[k] = float(v)
rows = [tuple(map(int, l.split(","))) for l in open(f"{out}/rss.csv").read().split()[1:]]
win = 60 if secs >= 180 else secs // 3
second = [r for s, r in rows if win <= s < 2 * win]
last = [r for s, r in rows if s >= secs - win]
mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
m2, ml = mean(second), mean(last)
drift = (ml - m2) / m2 if m2 == m2 and m2 else float("nan")
requests = int(stats.get("requests", 0))
failed = int(stats.get("non_2xx", -1)) + int(stats.get("socket_errors", -1))
print("---- soak summary ----")
print(f"duration {secs} s, requests {requests} ({requests / secs:.1f}/s)")
print(f"non-2xx {int(stats.get('non_2xx', -1))}, socket errors {int(stats.get('socket_errors', -1))}")
print("latency ms: p50 {latency_p50_ms} p90 {latency_p90_ms} p99 {latency_p99_ms} max {latency_max_ms}".format(
    **{k: stats.get(k, float("nan")) for k in ["latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms"]}))
print("rss MiB every 10 s: " + " ".join(f"{r / 1024:.1f}" for _, r in rows))
print(f"rss window {win} s: 2nd window mean {m2 / 1024:.1f} MiB, last window mean {ml / 1024:.1f} MiB, drift {drift * 100:+.1f}% (tolerance {tol * 100:.0f}%)")
ok = True
if alive != "yes":
    print("FAIL: the server died"); ok = False
if requests == 0 or failed != 0:
    print("FAIL: requests failed (or none ran)"); ok = False
if not (abs(drift) <= tol):
    print("FAIL: memory is not flat"); ok = False
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
