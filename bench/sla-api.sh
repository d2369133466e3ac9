#!/usr/bin/env bash
# Times the SLA, stalled and scorecard API calls of a running `tandem serve`
# on the large demo (`tandem demo --scale large --seed 42 --anchor
# 2026-11-23`), N requests each (default 3), and keeps each call's last
# body in OUTDIR as bodyI.json, so two servers of two builds can be compared
# byte for byte at the same `as_of` (body5 asks for now: compare it without
# `as_of`). Calls 9 and 10 ask for the page after the cursors of bodies 1
# and 7.
#
# Usage: TANDEM_TOKEN=tdm_… bench/sla-api.sh PORT LABEL OUTDIR [N]
set -euo pipefail
port=${1:?usage: bench/sla-api.sh PORT LABEL OUTDIR [N]}
label=${2:?label}
out=${3:?outdir}
n=${4:-3}
token=${TANDEM_TOKEN:?set TANDEM_TOKEN to an API token}
mkdir -p "$out"
as=2026-11-25T12:00:00Z
mid=2026-08-15T15:30:00Z
get() {
    curl -s -o "$out/body$1.json" -w "$label %{http_code} %{time_total}s %{size_download}B $2\n" \
        -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/$2"
}
i=0
for path in "metrics/sla?as_of=$as" "metrics/sla?week=2026-W47&as_of=$as" \
    "metrics/stalled?as_of=$as" "metrics/scorecard?as_of=$as" "metrics/sla" \
    "metrics/sla?as_of=$mid" "metrics/sla?as_of=$as&owner=dev.patel&limit=5" \
    "metrics/sla?week=2026-W30&as_of=$mid&owner=erin.walsh"; do
    i=$((i + 1))
    for _ in $(seq "$n"); do get "$i" "$path"; done
done
cursor() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['sales']['next_cursor'])" "$1"; }
get 9 "metrics/sla?as_of=$as&limit=7&cursor=$(cursor "$out/body1.json")"
get 10 "metrics/sla?as_of=$as&owner=dev.patel&limit=5&cursor=$(cursor "$out/body7.json")"
