#!/usr/bin/env bash
# API ingest benchmark: Segment `POST /v1/track` under wrk on loopback
# against `tandem serve`, on SQLite and on PostgreSQL 15 (issue 11).
#
# For each backend: a fresh `tandem demo --scale small`, a marketing write
# key, `tandem serve` on a free loopback port, then two wrk runs of the
# request shape of bench/track.lua (unique messageIds, 500 new people,
# event Webinar: each call stores a touch and re-evaluates its person):
#   (a) sustained: INGEST_CONNECTIONS connections, no wait, INGEST_SECONDS;
#       prints req/s;
#   (b) paced at INGEST_RATE req/s over INGEST_RATE_CONNECTIONS connections
#       (Debian's wrk has no -R: the Lua delay() hook hands out send slots,
#       see bench/track.lua); prints the achieved rate and p50/p90/p99/max.
# After each run the stored touches must have grown by at least the number
# of answered requests and at most that plus the connections (requests still
# in flight when wrk stops are stored but not counted by wrk).
#
# No peer: nothing else takes Segment calls into this schema. It reports the
# numbers against the target (p99 < 10 ms at 2,000 req/s on SQLite) and the
# PostgreSQL / SQLite ratio. Exits non-zero on any non-2xx answer, socket
# error or touch count mismatch.
#
# Usage: bench/compare/ingest.sh [TANDEM_BIN]
#   TANDEM_BIN: default the release build in $CARGO_TARGET_DIR (nothing is built).
# Environment: INGEST_BACKENDS ("sqlite postgres"), INGEST_SECONDS (20),
#   INGEST_CONNECTIONS (32), INGEST_RATE (2000), INGEST_RATE_CONNECTIONS (64),
#   INGEST_THREADS (2), INGEST_OUT (directory for logs; default a temp dir).
# Installs wrk and PostgreSQL 15 (and sqlite3) from Debian when run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-/var/cache/tandem-target}/release/tandem}
backends=${INGEST_BACKENDS:-sqlite postgres}
secs=${INGEST_SECONDS:-20}
conns=${INGEST_CONNECTIONS:-32}
rate=${INGEST_RATE:-2000}
rate_conns=${INGEST_RATE_CONNECTIONS:-64}
threads=${INGEST_THREADS:-2}
out=${INGEST_OUT:-$(mktemp -d /tmp/tandem-ingest.XXXXXX)}
mkdir -p "$out"
pgbin=/usr/lib/postgresql/15/bin

[ -x "$bin" ] || { echo "no tandem binary at $bin (cargo build --release -p tandem-cli)" >&2; exit 2; }
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v sqlite3 >/dev/null || need+=(sqlite3)
case " $backends " in *" postgres "*) [ -x "$pgbin/initdb" ] || need+=(postgresql-15) ;; esac
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${need[*]} from Debian…" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]} (apt-get install -y ${need[*]})" >&2
    exit 2
  fi
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); else as_pg=(); fi

work=$(mktemp -d /tmp/tandem-ingest-db.XXXXXX)
pid=""
pg_dir=""
stop_server() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
  pid=""
}
stop_pg() {
  if [ -n "$pg_dir" ]; then
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
  pg_dir=""
}
cleanup() { stop_server; stop_pg; rm -rf "$work"; }
trap cleanup EXIT

# Starts PostgreSQL 15 as the postgres user in a temp dir on a free loopback
# port, with its default durability (fsync on, synchronous_commit on), and
# sets $db_url.
start_pg() {
  local port
  port=$(free_port)
  pg_dir=$(mktemp -d /tmp/tandem-ingest-pg.XXXXXX)
  chown postgres "$pg_dir" 2>/dev/null || true
  "${as_pg[@]}" "$pgbin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync -E UTF8 >"$out/initdb.log" 2>&1
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c max_connections=100" start >/dev/null
  db_url="postgres://postgres@127.0.0.1:$port/postgres"
}

touches() {
  case $1 in
    sqlite) sqlite3 "$2" 'SELECT count(*) FROM touches' ;;
    postgres) psql -qtAX "$2" -c 'SELECT count(*) FROM touches' ;;
  esac
}

# run_wrk NAME CONNECTIONS [INTERVAL_MS]: one wrk run; leaves TRACK_* values in $out/NAME.txt.
run_wrk() {
  local name=$1 c=$2 interval=${3:-}
  TRACK_TOKEN=$token TRACK_RUN="$name-$$-$(date +%s)" TRACK_INTERVAL_MS=$interval \
    wrk -t"$threads" -c"$c" -d"${secs}s" --timeout 10s --latency -s "$here/track.lua" "$base" \
    >"$out/$name.txt" 2>"$out/$name.err" || { echo "wrk failed: $(cat "$out/$name.err")" >&2; return 1; }
}
val() { awk -v k="$2" '$1 == "TRACK" && $2 == k {print $3}' "$out/$1.txt"; }

status=0
summary=()
# check NAME CONNECTIONS BEFORE AFTER: fails on non-2xx, socket errors, touch mismatch.
check() {
  local name=$1 c=$2 before=$3 after=$4 reqs bad errs grown
  reqs=$(val "$name" requests); bad=$(val "$name" non_2xx); errs=$(val "$name" socket_errors)
  grown=$((after - before))
  echo "  answered $reqs, non-2xx $bad, socket errors $errs, touches stored +$grown"
  if [ "$bad" != 0 ] || [ "$errs" != 0 ]; then
    echo "  FAIL: $bad non-2xx answers, $errs socket errors (see $out/$name.err)"; status=1
  fi
  if [ "$grown" -lt "$reqs" ] || [ "$grown" -gt $((reqs + c)) ]; then
    echo "  FAIL: touches grew by $grown for $reqs answered requests over $c connections"; status=1
  fi
}

echo "tandem $("$bin" --version 2>/dev/null | head -1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(nproc) cores, output in $out"
for backend in $backends; do
  dir=$work/$backend
  mkdir -p "$dir"
  case $backend in
    sqlite) db_url=$dir/tandem.db ;;
    postgres) start_pg; echo "PostgreSQL: $("$pgbin/postgres" --version)" ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
  t() { "$bin" --playbook "$dir/tandem.toml" --database-url "$db_url" "$@"; }
  t init >/dev/null
  t demo --scale small >"$out/$backend-demo.log" 2>&1
  token=$(t token create --role marketing --name "ingest-bench" 2>/dev/null)
  port=$(free_port)
  base="http://127.0.0.1:$port"
  "$bin" --playbook "$dir/tandem.toml" --database-url "$db_url" serve --bind "127.0.0.1:$port" 2>"$out/$backend-serve.log" &
  pid=$!
  for _ in $(seq 1 300); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "$base/healthz" >/dev/null
  echo "== $backend: demo small, $(touches $backend "$db_url") touches, server pid $pid on $base"

  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  b=$(touches $backend "$db_url")
  run_wrk "$backend-sustained" "$conns"
  a=$(touches $backend "$db_url")
  n=$(val "$backend-sustained" requests); s=$(val "$backend-sustained" seconds)
  rps=$(python3 -c "print(f'{$n / $s:.0f}')")
  echo "(a) sustained, $conns connections, ${secs}s: $rps req/s (p50 $(val "$backend-sustained" latency_p50_ms) ms, p99 $(val "$backend-sustained" latency_p99_ms) ms)"
  check "$backend-sustained" "$conns" "$b" "$a"

  interval=$(python3 -c "print($threads * 1000 / $rate)")
  b=$(touches $backend "$db_url")
  run_wrk "$backend-paced" "$rate_conns" "$interval"
  a=$(touches $backend "$db_url")
  n=$(val "$backend-paced" requests); s=$(val "$backend-paced" seconds)
  achieved=$(python3 -c "print(f'{$n / $s:.0f}')")
  p50=$(val "$backend-paced" latency_p50_ms); p90=$(val "$backend-paced" latency_p90_ms)
  p99=$(val "$backend-paced" latency_p99_ms); max=$(val "$backend-paced" latency_max_ms)
  echo "(b) paced at $rate req/s, $rate_conns connections, ${secs}s: achieved $achieved req/s; latency p50 $p50 p90 $p90 p99 $p99 max $max ms"
  check "$backend-paced" "$rate_conns" "$b" "$a"
  load1=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "  load average before $load0, after $load1"
  summary+=("$backend $rps $achieved $p50 $p99")
  stop_server
  if [ "$backend" = postgres ]; then stop_pg; fi
done

echo "---- summary ----"
printf '%-9s %12s %14s %8s %8s\n' backend "sustained/s" "paced achieved" "p50 ms" "p99 ms"
for row in "${summary[@]}"; do printf '%-9s %12s %14s %8s %8s\n' $row; done
python3 - "$status" "$rate" "${summary[@]}" <<'PY'
import sys
failed, rate = sys.argv[1] != "0", int(sys.argv[2])
rows = {r.split()[0]: [float(x) for x in r.split()[1:]] for r in sys.argv[3:]}
if failed:
    print("FAIL: some calls failed or were not stored (see above); numbers are not valid")
elif "sqlite" in rows:
    rps, ach, p50, p99 = rows["sqlite"]
    met = rate >= 2000 and p99 < 10 and ach >= 0.95 * rate
    print(f"target p99 < 10 ms at 2000 req/s on SQLite: {'met' if met else 'NOT met'}"
          f" (p99 {p99} ms at {ach:.0f} req/s achieved of {rate} asked; sustained {rps:.0f} req/s)")
if "sqlite" in rows and "postgres" in rows:
    s, p = rows["sqlite"], rows["postgres"]
    print(f"PostgreSQL / SQLite: sustained req/s {p[0] / s[0]:.2f}x, p99 at the paced rate {p[3] / s[3]:.2f}x")
PY
exit $status
