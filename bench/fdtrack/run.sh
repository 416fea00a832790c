#!/usr/bin/env bash
# fdtrack's cost against the anchors, side by side in one run on this
# machine: baseline, libfdtrack.so (call sites recorded), valgrind
# --track-fds=yes, strace -f. Medians of REPS runs; ratios to the baseline.
# usage: bench/fdtrack/run.sh [BUILD_DIR] [N] [REPS]
set -euo pipefail
BUILD=${1:-build}
N=${2:-200000}
REPS=${3:-5}
BENCH="$BUILD/bin/fdbench"
SHIM="$(realpath "$BUILD/lib/libfdtrack.so")"
DIR=$(mktemp -d /tmp/fdbench-segs-XXXXXX)
trap 'rm -rf "$DIR"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run_tool NAME N CMD-PREFIX...: REPS runs, one median per workload.
declare -A RESULT
run_tool() {
  local name=$1 n=$2
  shift 2
  local w
  for w in file socket pipe; do
    local vals=()
    for _ in $(seq "$REPS"); do
      vals+=("$("$@" "$BENCH" "$n" "$w" 2>/dev/null | awk -v w="$w" '$1==w {print $2}')")
    done
    RESULT[$name,$w]=$(printf '%s\n' "${vals[@]}" | median)
  done
}

run_tool baseline "$N" env
run_tool fdtrack "$N" env LEAKSCOPE_DIR="$DIR" LD_PRELOAD="$SHIM"
run_tool valgrind $((N / 10)) valgrind -q --track-fds=yes
run_tool strace $((N / 20)) strace -f -qq -o /dev/null

printf '| tool | file open+close ns | ratio | socket+connect+close ns | ratio | pipe2+close ns | ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
for t in baseline fdtrack valgrind strace; do
  printf '| %s ' "$t"
  for w in file socket pipe; do
    printf '| %s | %.2fx ' "${RESULT[$t,$w]}" "$(echo "${RESULT[$t,$w]} / ${RESULT[baseline,$w]}" | bc -l)"
  done
  printf '|\n'
done
