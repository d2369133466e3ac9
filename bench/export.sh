#!/usr/bin/env bash
# `tandem export` checked and timed against its peers on the same SQLite store:
#   1. correctness: DuckDB (PyPI) reads the CSV, JSONL and Parquet files and
#      must find, for every table, the same row count as the store (read with
#      Python's sqlite3) and the same sum of every integer column (ids, times,
#      money); Parquet time columns must come back as UTC timestamps;
#   2. speed: rows/s and peak RSS (GNU time) of `tandem export` per format,
#      against the sqlite3 shell writing the same tables as CSV
#      (`.mode csv`, `SELECT * FROM t`) in the same run: ratio = tandem / sqlite3.
#
# Usage: bench/export.sh [--check] [DB]
#   DB: a tandem SQLite database. Default: /var/cache/tandem-large.db, else
#       /var/cache/tandem-medium.db, else a fresh `tandem demo` (small) in a
#       temp dir. --check: correctness only (what .ci/run runs).
# Env: TANDEM_BIN (default: a release build in CARGO_TARGET_DIR),
#      BENCH_VENV (default: $CARGO_TARGET_DIR/bench-venv; duckdb is
#      installed there from PyPI), BENCH_OUT (scratch dir, removed at the end).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
check_only=""
if [ "${1:-}" = "--check" ]; then
  check_only=1
  shift
fi
db="${1:-}"

if [ -z "${TANDEM_BIN:-}" ]; then
  echo "building tandem (release)…" >&2
  (cd "$repo" && cargo build --release -q -p tandem-cli)
  TANDEM_BIN="$target/release/tandem"
fi

venv="${BENCH_VENV:-$target/bench-venv}"
if ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  if python3 -c 'import duckdb' 2>/dev/null; then
    venv=""
  else
    echo "installing duckdb from PyPI into $venv…" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q duckdb
  fi
fi
py="${venv:+$venv/bin/python}"
py="${py:-python3}"

out="${BENCH_OUT:-$(mktemp -d)}"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT

if [ -z "$db" ]; then
  for f in /var/cache/tandem-large.db /var/cache/tandem-medium.db; do
    if [ -z "$db" ] && [ -s "$f" ] && [ -z "$check_only" ]; then db="$f"; fi
  done
fi
if [ -z "$db" ]; then
  db="$out/demo.db"
  echo "generating a small demo company in $db…" >&2
  (cd "$out" && "$TANDEM_BIN" --database-url "$db" --playbook "$out/tandem.toml" demo --anchor 2026-11-23 >/dev/null)
fi

gtime() { # gtime LABEL CMD… → prints "LABEL wall_s max_rss_kib"
  local label=$1; shift
  /usr/bin/time -f "$label %e %M" "$@" 2>"$out/time.txt" >/dev/null
  tail -1 "$out/time.txt"
}

results=()
for fmt in csv jsonl parquet; do
  rm -rf "$out/$fmt"
  r=$(gtime "$fmt" "$TANDEM_BIN" --database-url "$db" --playbook "$out/none.toml" export --format "$fmt" --out "$out/$fmt")
  results+=("$r")
done

"$py" - "$db" "$out" <<'PY'
import sqlite3, sys, duckdb
db, out = sys.argv[1], sys.argv[2]
src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
tables = [r[0] for r in src.execute(
    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
    "AND name NOT IN ('tandem_migrations', 'api_tokens') ORDER BY name")]
con = duckdb.connect()
readers = {
    "csv": "read_csv('{f}', header=true, all_varchar=false)",
    "jsonl": "read_json('{f}', format='newline_delimited')",
    "parquet": "read_parquet('{f}')",
}
bad = 0
total = 0
for t in tables:
    cols = src.execute(f'SELECT name, type FROM pragma_table_info("{t}")').fetchall()
    ints = [c for c, ty in cols if "INT" in ty.upper()]
    n = src.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
    total += n
    sums = {c: src.execute(f'SELECT COALESCE(SUM("{c}"), 0) FROM "{t}"').fetchone()[0] for c in ints}
    for fmt, reader in readers.items():
        f = f"{out}/{fmt}/{t}.{fmt}"
        rel = reader.format(f=f)
        got = con.execute(f"SELECT COUNT(*) FROM {rel}").fetchone()[0] if n else 0
        if n == 0:
            # An empty CSV has only its header; DuckDB reads it as 0 rows too.
            got = con.execute(f"SELECT COUNT(*) FROM {rel}").fetchone()[0]
        ok = got == n
        mism = []
        if n:
            types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {rel})").fetchall())
            for c in ints:
                is_ts = "TIMESTAMP" in types.get(c, "")
                expr = f'epoch_ms("{c}")' if is_ts else f'"{c}"'
                s = con.execute(f"SELECT COALESCE(SUM({expr}), 0) FROM {rel}").fetchone()[0]
                if int(s) != int(sums[c]):
                    mism.append(f"sum({c}) {s} != {sums[c]}")
                if fmt == "parquet" and (c == "at" or c.endswith("_at")) and not is_ts:
                    mism.append(f"{c} is {types.get(c)}, not a timestamp")
        if not ok or mism:
            bad += 1
            print(f"MISMATCH {t}.{fmt}: store {n} rows, duckdb {got}; {'; '.join(mism)}")
print(f"duckdb {duckdb.__version__}: {len(tables)} tables x 3 formats, {total} rows each: "
      + ("all counts and integer sums equal" if bad == 0 else f"{bad} mismatches"))
with open(f"{out}/rows.txt", "w") as fh:
    fh.write(str(total))
sys.exit(1 if bad else 0)
PY

[ -n "$check_only" ] && exit 0

rows=$(cat "$out/rows.txt")
if ! command -v sqlite3 >/dev/null; then
  echo "sqlite3 shell missing: apt-get install -y sqlite3" >&2
  exit 1
fi
mkdir -p "$out/peer"
script="$out/peer.sql"
: >"$script"
echo ".headers on" >>"$script"
echo ".mode csv" >>"$script"
for t in $(sqlite3 "file:$db?mode=ro" "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' AND name NOT IN ('tandem_migrations', 'api_tokens')"); do
  echo ".once $out/peer/$t.csv" >>"$script"
  echo "SELECT * FROM \"$t\";" >>"$script"
done
peer=$(gtime sqlite3 sqlite3 -readonly "$db" ".read $script")
echo "store: $db ($rows rows in all tables); load: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r _ pwall prss <<<"$peer"
printf '%-22s %9s %12s %11s %9s\n' "command" "wall s" "rows/s" "peak RSS" "ratio"
printf '%-22s %9s %12.0f %8d MiB %9s\n' "sqlite3 .mode csv" "$pwall" "$(echo "$rows / $pwall" | bc -l)" "$((prss / 1024))" "1.00"
for r in "${results[@]}"; do
  read -r fmt wall rss <<<"$r"
  printf '%-22s %9s %12.0f %8d MiB %9.2f\n' "tandem export $fmt" "$wall" "$(echo "$rows / $wall" | bc -l)" "$((rss / 1024))" "$(echo "$wall / $pwall" | bc -l)"
done
