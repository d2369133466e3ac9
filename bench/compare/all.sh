#!/usr/bin/env bash
# Every whole-command comparison of issue 11 in one run, timed: the large
# demo generated into a fresh SQLite file, then the waterfall against
# DuckDB on it (bench/compare/waterfall.sh), the import of a 1M-row CSV
# against sqlite3 (bench/compare/import.sh) and API ingest under wrk on
# SQLite and PostgreSQL (bench/compare/ingest.sh). Each script installs
# its peers when missing. Prints each part's wall time and the total;
# the target is the whole run in under 15 minutes on the 2-core machine.
#
# Usage: bench/compare/all.sh [TANDEM_BIN]
#   TANDEM_BIN: default the release build in $CARGO_TARGET_DIR, built first
#   when missing (the build is not counted).
# Env: BENCH_DIR (where the large demo goes; default a temp dir, removed
#   afterwards), RUNS (per comparison, default 3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
bin=${1:-$target/release/tandem}
if [ ! -x "$bin" ]; then
  echo "building tandem (release, not timed)…" >&2
  (cd "$repo" && cargo build --release -q -p tandem-cli)
fi
export RUNS=${RUNS:-3}
[ -x /usr/bin/time ] || apt-get install -y time >/dev/null

if [ -n "${BENCH_DIR:-}" ]; then
  dir=$BENCH_DIR
  mkdir -p "$dir"
else
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
rm -f "$dir/tandem.db" "$dir/tandem.db-wal" "$dir/tandem.db-shm"

parts=()
part() {
  local name=$1
  shift
  local start
  start=$(date +%s)
  echo "== $name"
  "$@"
  parts+=("$(printf '%-34s %5d s' "$name" $(($(date +%s) - start)))")
}

all=$(date +%s)
part "large demo (1.2 M people)" /usr/bin/time -f 'demo: %e s wall, %M KB peak RSS' \
  "$bin" --database-url "$dir/tandem.db" --playbook "$dir/tandem.toml" \
  demo --scale large --seed 42 --anchor 2026-11-23
part "waterfall vs DuckDB (large)" bash "$here/waterfall.sh" "$dir" "$bin"
part "import 1M rows vs sqlite3" bash "$here/import.sh" 1000000 "$bin"
part "ingest under wrk (SQLite, PostgreSQL)" bash "$here/ingest.sh" "$bin"

echo
echo "== wall time per part ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${parts[@]}"
printf '%-34s %5d s (target: under 900 s)\n' "total" $(($(date +%s) - all))
