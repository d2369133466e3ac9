#!/usr/bin/env python3
"""The cohort waterfall by source in DuckDB, over CSV exports of the store.

Same definition as `tandem waterfall --by source` (core
metrics/waterfall.rs, cohort at the first funnel stage, cycles): a cycle
(person, cycle) is in the cohort when its first entry into the first funnel
stage (at or before as-of) falls in [from, to); it counts at every funnel
stage up to the furthest one it entered by as-of (pass-through inferred).
Group: the person's source, "(none)" when empty.

Usage: waterfall_duckdb.py CSV_DIR PLAYBOOK FROM_MS TO_MS AS_OF_MS MODE [RUNS]
  MODE csv:    read the CSV files in the query (one cold run, prints counts)
  MODE loaded: load the CSVs into in-memory tables once, then run the query
               RUNS times and print the median query time in ms to stderr.
Prints {"source": {"stage": count}} as JSON on stdout.
"""
import json
import statistics
import sys
import time
import tomllib

import duckdb

csv_dir, playbook, frm, to, as_of, mode = sys.argv[1:7]
runs = int(sys.argv[7]) if len(sys.argv) > 7 else 5
with open(playbook, "rb") as f:
    pb = tomllib.load(f)
funnel = [s["id"] for s in pb["stage"] if s.get("kind", "funnel") == "funnel"]
values = ", ".join(f"('{s}', {i})" for i, s in enumerate(funnel))


def query(people: str, transitions: str) -> str:
    return f"""
    WITH f(stage, idx) AS (VALUES {values}),
    c AS (
        SELECT t.subject_id, t.cycle,
               MIN(CASE WHEN f.idx = 0 THEN t.at END) AS t0,
               MAX(f.idx) AS reach
        FROM {transitions} t JOIN f ON t.to_stage = f.stage
        WHERE t.subject_kind = 'person' AND t.at <= {as_of}
        GROUP BY 1, 2
    )
    SELECT COALESCE(NULLIF(p.source, ''), '(none)') AS src, f.stage, COUNT(*) AS n
    FROM c
    LEFT JOIN {people} p ON p.id = c.subject_id
    JOIN f ON f.idx <= c.reach
    WHERE c.t0 >= {frm} AND c.t0 < {to}
    GROUP BY 1, 2
    """


def out(rows):
    res = {}
    for src, stage, n in rows:
        res.setdefault(src, {})[stage] = n
    print(json.dumps(res, sort_keys=True))


con = duckdb.connect()
people_csv = f"read_csv('{csv_dir}/people.csv', header=true, all_varchar=false)"
trans_csv = f"read_csv('{csv_dir}/transitions.csv', header=true)"
if mode == "csv":
    out(con.execute(query(people_csv, trans_csv)).fetchall())
else:
    con.execute(f"CREATE TABLE people AS SELECT * FROM {people_csv}")
    con.execute(f"CREATE TABLE transitions AS SELECT * FROM {trans_csv}")
    times = []
    rows = None
    for _ in range(runs):
        t = time.perf_counter()
        rows = con.execute(query("people", "transitions")).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    print(f"{statistics.median(times):.1f}", file=sys.stderr)
    out(rows)
