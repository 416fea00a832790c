#!/usr/bin/env bash
# The series readers against the issue's anchors, in one run on this machine:
#  - a scrape of 100 traced processes with 1,000 sites each: under 100 ms;
#  - `record` at a 1 s interval over 20 such processes: under 1% of a core.
# The processes are segfarm's (real sleeping processes, synthetic segments of
# the full default size: 8 subsystems, SITES sites, 1,000 open sockets).
# CPU time is read from /proc/<pid>/stat of serve/record, so a loaded
# machine (other work on the same cores) does not inflate it; wall times are
# printed too. The first scrape, which symbolizes every top site once, is
# reported apart from the steady state.
# usage: bench/series/run.sh [BUILD_DIR] [SCRAPES] [RECORD_SECONDS]
set -euo pipefail
BUILD=${1:-build}
SCRAPES=${2:-20}
RECORD_S=${3:-30}
LKS="$BUILD/bin/leakscope"
FARM="$BUILD/bin/segfarm"
TMP=$(mktemp -d /dev/shm/series-bench-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$TMP"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

farm() { # farm DIR N SITES: starts segfarm, waits until its segments exist
  "$FARM" "$1" "$2" "$3" >"$1.ready" &
  PIDS+=($!)
  until grep -q ready "$1.ready" 2>/dev/null; do sleep 0.1; done
}

# --- scrape: 100 processes x 1,000 sites ---
farm "$TMP/s100" 100 1000
"$LKS" serve --listen 127.0.0.1:0 --dir "$TMP/s100" 2>"$TMP/serve.err" &
SERVE=$!
PIDS+=($SERVE)
until PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$TMP/serve.err") && [ -n "$PORT" ]; do sleep 0.05; done
URL="http://127.0.0.1:$PORT/metrics"
first=$(curl -s -o "$TMP/m.txt" -w '%{time_total}' "$URL")
lines=$(grep -vc '^#' "$TMP/m.txt")
bytes=$(wc -c <"$TMP/m.txt")
walls=()
c0=$(cpu_ticks "$SERVE")
for _ in $(seq "$SCRAPES"); do
  walls+=("$(curl -s -o "$TMP/m.txt" -w '%{time_total}' "$URL")")
  grep '^leakscope_exporter_scrape_duration_seconds' "$TMP/m.txt" | awk '{print $2}' >>"$TMP/reads"
done
c1=$(cpu_ticks "$SERVE")
cpu_ms=$(awk -v t=$((c1 - c0)) -v n="$SCRAPES" -v hz="$HZ" 'BEGIN {printf "%.1f", t * 1000 / hz / n}')
wall_ms=$(printf '%s\n' "${walls[@]}" | median | awk '{printf "%.1f", $1 * 1000}')
read_ms=$(median <"$TMP/reads" | awk '{printf "%.1f", $1 * 1000}')
promtool check metrics <"$TMP/m.txt" >"$TMP/promtool.out" 2>&1 && lint=clean || lint="$(head -3 "$TMP/promtool.out")"
kill "$SERVE"

# --- record: 20 processes x 1,000 sites, 1 s interval ---
farm "$TMP/r20" 20 1000
"$LKS" record --out "$TMP/rec.db" --dir "$TMP/r20" --interval 1 --duration "$RECORD_S" 2>"$TMP/rec.err" &
REC=$!
PIDS+=($REC)
sleep 2 # past the first tick (symbolization)
r0=$(cpu_ticks "$REC")
t0=$(date +%s.%N)
sleep $((RECORD_S - 4))
r1=$(cpu_ticks "$REC")
t1=$(date +%s.%N)
wait "$REC"
rec_pct=$(awk -v t=$((r1 - r0)) -v hz="$HZ" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", t / hz / (b - a) * 100}')
ticks=$(sqlite3 "$TMP/rec.db" 'SELECT count(*) FROM tick')
tick_ms=$(sqlite3 "$TMP/rec.db" 'SELECT scan_ms FROM tick WHERE id > 2' | median | awk '{printf "%.1f", $1}')
db_kb=$(( $(stat -c %s "$TMP/rec.db") / 1024 ))

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "scrape, 100 processes x 1000 sites ($lines samples, $bytes bytes, promtool: $lint)"
echo "  first scrape (symbolizes every top site): $(awk -v t="$first" 'BEGIN {printf "%.0f", t * 1000}') ms wall"
echo "  steady state, $SCRAPES scrapes: CPU $cpu_ms ms/scrape (anchor 100 ms; ratio $(awk -v c="$cpu_ms" 'BEGIN {printf "%.2f", c / 100}'))"
echo "    median wall $wall_ms ms, of which reading segments $read_ms ms"
echo "record, 20 processes x 1000 sites, 1 s interval, ${RECORD_S} s: $ticks ticks, $db_kb KiB"
echo "  CPU $rec_pct % of a core (anchor 1 %; ratio $(awk -v c="$rec_pct" 'BEGIN {printf "%.2f", c / 1}')), median sampling $tick_ms ms per tick"
