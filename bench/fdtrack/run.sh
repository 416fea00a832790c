#!/usr/bin/env bash
# fdtrack's cost against the anchors, side by side in one run on this
# machine: baseline, libfdtrack.so (call sites recorded), valgrind
# --track-fds=yes, strace -f. Medians of REPS interleaved runs; ratios to the
# baseline.
# usage: bench/fdtrack/run.sh [BUILD_DIR] [N] [REPS]
# FDTRACK_BEFORE=path/to/other/libfdtrack.so adds a row for that shim (an
# older build), run interleaved with the others: before/after in one run.
set -euo pipefail
BUILD=${1:-build}
N=${2:-200000}
REPS=${3:-5}
BENCH="$BUILD/bin/fdbench"
SHIM="$(realpath "$BUILD/lib/libfdtrack.so")"
DIR=$(mktemp -d /dev/shm/fdbench-segs-XXXXXX) # where segments live by default
trap 'rm -rf "$DIR"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Each repetition runs every tool on every workload in turn, so a burst of
# load on this shared machine falls on all of them alike.
declare -A VALUES RESULT
run_once() {
  local name=$1 n=$2 w
  shift 2
  for w in file socket pipe; do
    VALUES[$name,$w]+="$("$@" "$BENCH" "$n" "$w" 2>/dev/null | awk -v w="$w" '$1==w {print $2}') "
  done
}

for _ in $(seq "$REPS"); do
  run_once baseline "$N" env
  run_once fdtrack "$N" env LEAKSCOPE_DIR="$DIR" LD_PRELOAD="$SHIM"
  [ -n "${FDTRACK_BEFORE:-}" ] && run_once before "$N" env LEAKSCOPE_DIR="$DIR" LD_PRELOAD="$(realpath "$FDTRACK_BEFORE")"
  run_once valgrind $((N / 10)) valgrind -q --track-fds=yes
  run_once strace $((N / 20)) strace -f -qq -o /dev/null
done
for key in "${!VALUES[@]}"; do
  RESULT[$key]=$(printf '%s\n' ${VALUES[$key]} | median)
done

printf '| tool | file open+close ns | ratio | socket+connect+close ns | ratio | pipe2+close ns | ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
TOOLS="baseline ${FDTRACK_BEFORE:+before} fdtrack valgrind strace"
for t in $TOOLS; do
  printf '| %s ' "$t"
  for w in file socket pipe; do
    printf '| %s | %.2fx ' "${RESULT[$t,$w]}" "$(echo "${RESULT[$t,$w]} / ${RESULT[baseline,$w]}" | bc -l)"
  done
  printf '|\n'
done
