#!/bin/bash
# bench/real/compare.sh OLD_BUILD NEW_BUILD [N] - two builds of the shims on
# the same real programs, interleaved (plain, old, new, plain, ...), so that
# the load of a noisy machine hits all three alike. Prints the median
# task-clock (CPU ms, from `perf stat`: finer than time's 10 ms) of N runs
# of each and the ratios to plain. Workloads: sqlite3 inserting 20,000
# rows (one process, an allocation wrapper), a small `cc -O1 -c` (three
# short processes, cold code) and a local `git clone` (a dozen processes);
# WORKLOADS="python fdbench" adds bench/python/json_work.py and fdbench's
# file churn (NEW_BUILD's binary). Both shims are preloaded. Needs perf
# (Debian: linux-perf).
set -euo pipefail
OLD=$(cd "${1:?usage: compare.sh OLD_BUILD NEW_BUILD [N]}" && pwd)
NEW=$(cd "${2:?usage: compare.sh OLD_BUILD NEW_BUILD [N]}" && pwd)
N=${3:-11}
command -v perf >/dev/null || { echo "compare.sh: needs perf (apt-get install linux-perf)" >&2; exit 2; }
W=$(mktemp -d /tmp/lks-bench-cmp.XXXXXX)
SEGS=$(mktemp -d /dev/shm/lks-bench-segs.XXXXXX)
trap 'rm -rf "$W" "$SEGS"' EXIT

python3 "$(dirname "$0")/inserts.py" "$W/inserts.sql"
for k in $(seq 0 39); do echo "int m_$k(int x) { return x * $k + 1; }"; done >"$W/m.c"
git init -q "$W/repo"
(cd "$W/repo" && for i in $(seq 30); do
   echo "line $i" >>f.txt; git add -A && git -c user.email=b@x -c user.name=b commit -qm "c$i"; done)

declare -A CMD=(
  [sqlite3]="rm -f $W/db && sqlite3 $W/db < $W/inserts.sql"
  [cc]="cc -O1 -c $W/m.c -o $W/m.o"
  [git]="rm -rf $W/clone && git clone -q --no-local $W/repo $W/clone"
  [python]="/usr/bin/python3 $(dirname "$0")/../python/json_work.py"
  [fdbench]="$NEW/bin/fdbench 100000 file"
)

one() { # LIBDIR (empty: plain) WORKLOAD -> task-clock ms
  local env=()
  [ -n "$1" ] && env=(LD_PRELOAD="$1/libfdtrack.so:$1/libmemtrack.so" LEAKSCOPE_DIR="$SEGS")
  perf stat -x, -e task-clock -o "$W/stat" env "${env[@]}" bash -c "${CMD[$2]}" >/dev/null 2>&1
  rm -f "$SEGS"/*.seg
  awk -F, '/task-clock/ {print $1}' "$W/stat"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '| workload | plain ms | old ms | old ratio | new ms | new ratio |\n|---|---|---|---|---|---|\n'
for wl in ${WORKLOADS:-sqlite3 cc git}; do
  : >"$W/p"; : >"$W/o"; : >"$W/n"
  for _ in $(seq "$N"); do
    one "" $wl >>"$W/p"; one "$OLD/lib" $wl >>"$W/o"; one "$NEW/lib" $wl >>"$W/n"
  done
  p=$(median <"$W/p"); o=$(median <"$W/o"); n=$(median <"$W/n")
  printf '| %s | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n' $wl "$p" "$o" "$(echo "$o / $p" | bc -l)" \
    "$n" "$(echo "$n / $p" | bc -l)"
done
