#!/usr/bin/env bash
# Times exact Markov attribution (order 1 and 3) of `tandem attribution`
# against the Python package ChannelAttribution (which simulates the chain)
# on the same ChannelAttribution-format paths, in the same run:
#   1. the shared example file paths.csv;
#   2. the journeys of a demo company (`tandem demo --scale $BENCH_DEMO_SCALE`,
#      default medium), exported with `tandem attribution --export-paths`;
#      tandem is also timed straight from the database there.
# tandem is timed as a whole process (start, read and parse the file, solve,
# print), best of 5; ChannelAttribution only inside markov_model (pandas reads
# the file before the clock starts), best of 3 calls, so the ratio favours
# it. Peak RSS: GNU time for tandem, ru_maxrss of the whole Python process
# (interpreter, pandas and the package included) for ChannelAttribution.
#
# Usage: bench/attribution.sh [PATHS_FILE]
#   PATHS_FILE defaults to ../shared/data/attribution/paths.csv (beside the repo).
# Env: CARGO_TARGET_DIR (release build goes there), BENCH_VENV (default
#   target dir/bench-venv), BENCH_DEMO_SCALE (small|medium|large, default
#   medium; the database is generated once under target dir/bench-demo and
#   reused; `none` skips part 2). ChannelAttribution is installed from PyPI
#   into the venv; if that fails the script says so and times only tandem.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
paths="${1:-$repo/../shared/data/attribution/paths.csv}"
target="${CARGO_TARGET_DIR:-$repo/target}"
scale="${BENCH_DEMO_SCALE:-medium}"

echo "building tandem (release)…"
(cd "$repo" && cargo build --release -q -p tandem-cli)
tandem="$target/release/tandem"

venv="${BENCH_VENV:-$target/bench-venv}"
have_ca=1
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >/dev/null 2>&1 || have_ca=0
fi
if [[ $have_ca == 1 ]] && ! "$venv/bin/python" -c 'import ChannelAttribution' >/dev/null 2>&1; then
  # ChannelAttribution imports matplotlib and needs pandas without declaring both.
  "$venv/bin/pip" install -q ChannelAttribution pandas matplotlib >/dev/null 2>&1 || have_ca=0
fi
if [[ $have_ca == 1 ]] && ! "$venv/bin/python" -c 'import ChannelAttribution' >/dev/null 2>&1; then
  have_ca=0
fi

# Best wall time of 5 runs of a tandem command and its peak RSS (MB).
time_tandem() { # args...
  local best=999999 t t0 rss=0
  for _ in 1 2 3 4 5; do
    # GNU time's %e has 10 ms resolution: take the wall time from date.
    t0=$(date +%s.%N)
    rss=$( { /usr/bin/time -f '%M' "$tandem" "$@" >/dev/null; } 2>&1 | tail -n 1)
    t=$(echo "$(date +%s.%N) - $t0" | bc -l)
    best=$(echo "if ($t < $best) $t else $best" | bc -l)
  done
  printf '%s %s\n' "$best" "$(echo "$rss / 1024" | bc)"
}

# Best time of 3 markov_model calls and the process's peak RSS (MB).
time_ca() { # file order
  "$venv/bin/python" - "$1" "$2" <<'PY' | tail -n 1
import sys, time, io, contextlib, resource
import pandas as pd
from ChannelAttribution import markov_model
data = pd.read_csv(sys.argv[1], sep=";")
order = int(sys.argv[2])
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        markov_model(data, "path", "total_conversions", var_value="total_conversion_value",
                     var_null="total_null", order=order)
    best = min(best, time.perf_counter() - t0)
print(f"{best:.6f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}")
PY
}

compare() { # label file
  local label=$1 file=$2 order tt ca
  echo "== $label: $(($(wc -l <"$file") - 1)) distinct paths"
  for order in 1 3; do
    tt=$(time_tandem attribution --paths "$file" --model markov --order "$order" --format csv)
    printf 'order %d: tandem (exact)              %8.3f s  %5s MB\n' "$order" ${tt% *} ${tt#* }
    [[ $have_ca == 1 ]] || continue
    ca=$(time_ca "$file" "$order")
    printf 'order %d: ChannelAttribution (sim.)   %8.3f s  %5s MB\n' "$order" ${ca% *} ${ca#* }
    printf 'order %d: ratio ChannelAttribution / tandem = %.1fx\n' "$order" \
      "$(echo "${ca% *} / ${tt% *}" | bc -l)"
  done
}

if [[ -f "$paths" ]]; then
  compare "$(basename "$paths")" "$(cd "$(dirname "$paths")" && pwd)/$(basename "$paths")"
else
  echo "notice: paths file $paths not found; skipping it"
fi

if [[ $scale != none ]]; then
  dir="$target/bench-demo"
  mkdir -p "$dir"
  db="$dir/$scale.db"
  run() { "$tandem" --database-url "$db" --playbook "$dir/$scale.toml" "$@"; }
  if [[ ! -f "$dir/$scale.done" ]]; then
    rm -f "$db" "$db"-*
    t0=$(date +%s.%N)
    run demo --scale "$scale" --anchor 2026-11-23 >/dev/null
    printf 'demo --scale %s generated in %.0f s\n' "$scale" "$(echo "$(date +%s.%N) - $t0" | bc -l)"
    touch "$dir/$scale.done"
  fi
  for order in 1 3; do
    tt=$(time_tandem --database-url "$db" --playbook "$dir/$scale.toml" \
      attribution --model markov --order "$order" --as-of 2026-11-23 --format csv)
    printf 'demo %s, order %d: tandem from the database (load, journeys, solve) %8.3f s  %5s MB\n' \
      "$scale" "$order" ${tt% *} ${tt#* }
  done
  run attribution --as-of 2026-11-23 --export-paths "$dir/$scale-paths.csv"
  compare "demo $scale journeys" "$dir/$scale-paths.csv"
fi

if [[ $have_ca == 0 ]]; then
  echo "notice: could not install the Python package ChannelAttribution into $venv; only tandem was timed"
fi
exit 0
