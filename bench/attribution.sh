#!/usr/bin/env bash
# Times exact Markov attribution (order 1 and 3) of `tandem attribution`
# against the Python package ChannelAttribution (which simulates the chain)
# on the same ChannelAttribution-format paths file, in the same run.
# tandem is timed as a whole process (start, read and parse the file,
# solve, print); ChannelAttribution only inside markov_model (the file is
# read by pandas before the clock starts), so the ratio favours it.
#
# Usage: bench/attribution.sh [PATHS_FILE]
#   PATHS_FILE defaults to ../shared/data/attribution/paths.csv (beside the repo).
# Env: CARGO_TARGET_DIR (release build goes there), BENCH_VENV (default
#   target dir/bench-venv). ChannelAttribution is installed from PyPI into the
#   venv; if that fails the script says so and exits 0.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
paths="${1:-$repo/../shared/data/attribution/paths.csv}"
if [[ ! -f "$paths" ]]; then
  echo "notice: paths file $paths not found; nothing to benchmark"
  exit 0
fi
paths="$(cd "$(dirname "$paths")" && pwd)/$(basename "$paths")"
target="${CARGO_TARGET_DIR:-$repo/target}"

echo "building tandem (release)…"
(cd "$repo" && cargo build --release -q -p tandem-cli)
tandem="$target/release/tandem"

now() { date +%s.%N; }

time_tandem() { # order
  local t0 t1
  t0=$(now)
  "$tandem" attribution --paths "$paths" --model markov --order "$1" --format csv >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

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

for order in 1 3; do
  t_tandem=$(time_tandem "$order")
  printf 'order %d: tandem (exact)              %8.3f s\n' "$order" "$t_tandem"
  if [[ $have_ca == 0 ]]; then
    continue
  fi
  t_ca=$("$venv/bin/python" - "$paths" "$order" <<'PY'
import sys, time, io, contextlib
import pandas as pd
from ChannelAttribution import markov_model
data = pd.read_csv(sys.argv[1], sep=";")
order = int(sys.argv[2])
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    markov_model(data, "path", "total_conversions", var_value="total_conversion_value",
                 var_null="total_null", order=order)
print(f"{time.perf_counter() - t0:.6f}")
PY
  )
  # The package prints a banner on import: the time is the last line.
  t_ca=$(printf '%s\n' "$t_ca" | tail -n 1)
  printf 'order %d: ChannelAttribution (sim.)   %8.3f s\n' "$order" "$t_ca"
  printf 'order %d: ratio ChannelAttribution / tandem = %.1fx\n' "$order" \
    "$(echo "$t_ca / $t_tandem" | bc -l)"
done

if [[ $have_ca == 0 ]]; then
  echo "notice: could not install the Python package ChannelAttribution into $venv; only tandem was timed"
fi
exit 0
