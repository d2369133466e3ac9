#!/usr/bin/env bash
# Times `tandem demo` (generation into a fresh SQLite file) per scale, and in
# the same run a peer on the same rows: sqlite3 copying every table of the
# generated database into a fresh file with the same schema (indexes in
# place, one transaction, sqlite3's defaults): what plain SQLite needs just
# to write those rows on this machine right now. The ratio tandem / peer
# says how close generating the history with the real lifecycle engine
# comes to only writing it.
#
# Usage: bench/demo.sh [SCALE...]   (default: small medium large)
# Env: CARGO_TARGET_DIR (release build goes there), TANDEM_BIN (skip the
#   build and use this binary), BENCH_DIR (default target dir/bench-demo;
#   the databases are left there), BENCH_SEED (42), BENCH_ANCHOR
#   (2026-11-23).
# Prints one line per scale: wall seconds and peak RSS of both, the ratio,
# rows per table, database size and the load average.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
dir="${BENCH_DIR:-$target/bench-demo}"
seed="${BENCH_SEED:-42}"
anchor="${BENCH_ANCHOR:-2026-11-23}"
scales=("$@")
[ ${#scales[@]} -eq 0 ] && scales=(small medium large)

command -v sqlite3 >/dev/null || apt-get install -y sqlite3 >/dev/null
[ -x /usr/bin/time ] || apt-get install -y time >/dev/null

bin="${TANDEM_BIN:-}"
if [ -z "$bin" ]; then
  echo "building tandem (release)…" >&2
  (cd "$repo" && cargo build --release -q -p tandem-cli)
  bin="$target/release/tandem"
fi
mkdir -p "$dir"
tables="accounts account_targets people campaigns touches activities deals transitions"

printf '%-7s %9s %9s %9s %9s %7s  %s\n' scale tandem_s tandem_MB sqlite_s sqlite_MB ratio "rows / size / load"
for scale in "${scales[@]}"; do
  db="$dir/$scale.db"
  peer="$dir/$scale-peer.db"
  rm -f "$db" "$db-wal" "$db-shm" "$peer" "$peer-journal"
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  /usr/bin/time -f '%e %M' -o "$dir/$scale.time" \
    "$bin" --database-url "$db" --playbook "$dir/tandem.toml" \
    demo --scale "$scale" --seed "$seed" --anchor "$anchor" >"$dir/$scale.out" 2>"$dir/$scale.err"
  read -r t_s t_kb <"$dir/$scale.time"

  # The peer: same schema (indexes included), then every row copied.
  sqlite3 "$db" .schema | grep -v '^CREATE TABLE sqlite_' | sqlite3 "$peer"
  {
    echo "ATTACH '$db' AS src;"
    echo "BEGIN;"
    for t in $tables; do echo "INSERT INTO main.$t SELECT * FROM src.$t;"; done
    echo "COMMIT;"
  } >"$dir/$scale-peer.sql"
  /usr/bin/time -f '%e %M' -o "$dir/$scale-peer.time" sqlite3 "$peer" <"$dir/$scale-peer.sql"
  read -r p_s p_kb <"$dir/$scale-peer.time"

  rows=""
  for t in accounts people touches activities deals transitions; do
    rows="$rows $t=$(sqlite3 "$db" "SELECT COUNT(*) FROM $t")"
  done
  size=$(du -m "$db" | cut -f1)
  ratio=$(awk -v a="$t_s" -v b="$p_s" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  printf '%-7s %9s %9d %9s %9d %7s  %s / %s MB / load %s\n' \
    "$scale" "$t_s" $((t_kb / 1024)) "$p_s" $((p_kb / 1024)) "$ratio" "${rows# }" "$size" "$load"
  rm -f "$peer" "$peer-journal"
done
