#!/usr/bin/env bash
# Import speed: `tandem import people` of an N-row CSV (validation on:
# every row is parsed, checked and written in one transaction, with the
# person's first lifecycle transition) against `sqlite3 .import` of the
# same file into an equivalent table (the same columns, external_id
# unique, no checks). Both start from an empty database each run; times
# are hyperfine means; prints rows/s and the ratio (target: tandem at
# least 0.5x the speed of sqlite3 .import). Then, as a second peer, sqlite3
# storing the very rows tandem stored, in tandem's schema.
#
# Usage: bench/compare/import.sh [ROWS] [TANDEM_BIN]
#   ROWS defaults to 1000000; RUNS (default 3) runs per side.
set -euo pipefail
rows=${1:-1000000}
bin=${2:-${CARGO_TARGET_DIR:-/var/cache/tandem-target}/release/tandem}
runs=${RUNS:-3}
here=$(cd "$(dirname "$0")/../.." && pwd)

command -v hyperfine >/dev/null || apt-get install -y hyperfine >/dev/null
command -v sqlite3 >/dev/null || apt-get install -y sqlite3 >/dev/null
echo "peers: $(hyperfine --version), sqlite3 $(sqlite3 --version | cut -d' ' -f1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
csv="$work/people.csv"
# Deterministic rows that look like a CRM export: every field the starter
# playbook's rules read, timestamps in ISO UTC.
python3 - "$rows" "$csv" <<'PY'
import sys, random
n, out = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(7)
titles = ["VP Marketing", "Head of Sales", "Data Engineer", "CTO", "Analyst", "Marketing Manager", "CEO"]
sources = ["paid_search", "organic_search", "email", "events", "referral", "paid_social", "direct"]
owners = ["ana", "bob", "chen", "dara", "eli"]
countries = ["US", "DE", "FR", "GB", "BR", "IN"]
with open(out, "w") as f:
    f.write("external_id,email,first_name,last_name,title,country,source,owner,created_at\n")
    for i in range(n):
        day = 1 + i % 28
        month = 1 + (i // 28) % 12
        f.write(f"p{i},p{i}@co{i % 5000}.example,First{i % 997},Last{i % 991},"
                f"{rnd.choice(titles)},{rnd.choice(countries)},{rnd.choice(sources)},"
                f"{rnd.choice(owners)},2026-{month:02d}-{day:02d}T{i % 24:02d}:{i % 60:02d}:00Z\n")
PY
echo "$rows rows, $(du -h "$csv" | cut -f1) at $csv"
cp "$here/crates/core/src/playbook/starter.toml" "$work/tandem.toml"

cat > "$work/schema.sql" <<'SQL'
CREATE TABLE people(external_id TEXT NOT NULL UNIQUE, email TEXT, first_name TEXT,
  last_name TEXT, title TEXT, country TEXT, source TEXT, owner TEXT, created_at TEXT);
SQL
# One --prepare per command: each side starts from its own empty database
# and leaves it for the row count below.
hyperfine --runs "$runs" --export-json "$work/h.json" \
  --prepare "rm -f $work/t.db $work/t.db-wal $work/t.db-shm" \
  --prepare "rm -f $work/s.db" \
  -n tandem "$bin --playbook $work/tandem.toml --database-url $work/t.db import people $csv" \
  -n sqlite3 "sqlite3 $work/s.db < $work/schema.sql && sqlite3 $work/s.db '.import --csv --skip 1 $csv people'"
# Both stored every row.
t=$(sqlite3 "$work/t.db" "SELECT COUNT(*) FROM people")
s=$(sqlite3 "$work/s.db" "SELECT COUNT(*) FROM people")
echo "rows stored: tandem $t, sqlite3 $s"
[ "$t" = "$rows" ] && [ "$s" = "$rows" ] || { echo "row counts differ from $rows" >&2; exit 1; }
# A second peer: sqlite3 storing the rows tandem stored (its people and the
# first lifecycle transitions, exported from tandem's database) into
# tandem's own schema, with its indexes and trigger, in one transaction.
# That is SQLite's own cost of what tandem writes, without reading,
# validating or evaluating anything.
sqlite3 -csv "$work/t.db" "SELECT * FROM people ORDER BY id" > "$work/stored-people.csv"
sqlite3 -csv "$work/t.db" "SELECT * FROM transitions ORDER BY seq" > "$work/stored-transitions.csv"
sqlite3 "$work/t.db" .schema > "$work/tandem-schema.sql"
hyperfine --runs "$runs" --export-json "$work/h2.json" \
  --prepare "rm -f $work/u.db $work/u.db-journal" \
  -n "sqlite3 (tandem's rows and schema)" \
  "sqlite3 $work/u.db '.read $work/tandem-schema.sql' '.import --csv $work/stored-people.csv people' '.import --csv $work/stored-transitions.csv transitions'"
u=$(sqlite3 "$work/u.db" "SELECT COUNT(*) FROM people")
[ "$u" = "$rows" ] || { echo "sqlite3 stored $u of tandem's people" >&2; exit 1; }
python3 - "$work/h.json" "$work/h2.json" "$rows" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
r2 = json.load(open(sys.argv[2]))["results"][0]
n = int(sys.argv[3])
t, s, u = r["tandem"]["mean"], r["sqlite3"]["mean"], r2["mean"]
print(f"tandem import people: {t:.2f} s ({n / t:,.0f} rows/s)")
print(f"sqlite3 .import:      {s:.2f} s ({n / s:,.0f} rows/s)")
print(f"sqlite3 .import of tandem's rows into tandem's schema: {u:.2f} s ({n / u:,.0f} people/s)")
print(f"tandem speed / sqlite3 speed = {s / t:.2f}x (target >= 0.5x: {'met' if s / t >= 0.5 else 'not met'})")
print(f"tandem speed / sqlite3 storing the same rows = {u / t:.2f}x")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
