#!/bin/bash
# run.sh - Python workloads side by side: plain python3, python3 -X
# tracemalloc=25, heaptrack, and leakscope (both shims, Python frames,
# pymalloc wrapped). Prints the median wall and CPU time of N runs each and
# the slowdowns. Usage: bench/python/run.sh BUILD_DIR [N]
set -euo pipefail
build=${1:?build dir}
n=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
chmod 700 "$tmp"
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
export LEAKSCOPE_DIR=$tmp/seg

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# one MODE WORKLOAD: prints "wall cpu"
one() {
    local mode=$1 w=$here/$2
    case $mode in
    plain) /usr/bin/time -f "%e %U %S" -o "$tmp/t" $py "$w" >/dev/null ;;
    tracemalloc) /usr/bin/time -f "%e %U %S" -o "$tmp/t" $py -X tracemalloc=25 "$w" >/dev/null ;;
    heaptrack) /usr/bin/time -f "%e %U %S" -o "$tmp/t" heaptrack -o "$tmp/ht" $py "$w" >/dev/null 2>&1
               rm -f "$tmp"/ht* ;;
    leakscope) /usr/bin/time -f "%e %U %S" -o "$tmp/t" "$build/bin/leakscope" run --quiet -- $py "$w" >/dev/null ;;
    esac
    awk '{print $1, $2 + $3}' "$tmp/t"
}

for w in json_work.py asyncio_work.py; do
    declare -A wall cpu
    for mode in plain tracemalloc heaptrack leakscope; do : >"$tmp/$mode"; done
    for _ in $(seq "$n"); do # interleaved, so load changes hit every mode alike
        for mode in plain tracemalloc heaptrack leakscope; do one $mode $w >>"$tmp/$mode"; done
    done
    for mode in plain tracemalloc heaptrack leakscope; do
        wall[$mode]=$(cut -d' ' -f1 "$tmp/$mode" | median)
        cpu[$mode]=$(cut -d' ' -f2 "$tmp/$mode" | median)
    done
    echo "$w (median of $n)"
    for mode in plain tracemalloc heaptrack leakscope; do
        awk -v m=$mode -v w=${wall[$mode]} -v c=${cpu[$mode]} -v pw=${wall[plain]} -v pc=${cpu[plain]} \
            'BEGIN {printf "  %-12s wall %6.2f s (%4.2fx)  cpu %6.2f s (%4.2fx)\n", m, w, w/pw, c, c/pc}'
    done
    unset wall cpu
done
