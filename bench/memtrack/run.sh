#!/bin/sh
# run.sh - memtrack against heaptrack, valgrind massif and memcheck, side by
# side in one run: every repetition runs each tool on each workload in turn,
# so background load hits all of them alike; medians are reported.
#
#   bench/memtrack/run.sh BUILD_DIR [REPS]
#
# Workloads: (a) heapbench 1 thread, (b) heapbench 2 threads (100k-pointer
# working set, 16-4096 byte blocks, call chain 8 deep), (c) python3 JSON
# build/dump/load with PYTHONMALLOC=malloc.
set -eu
build=$(cd "${1:?usage: run.sh BUILD_DIR [REPS]}" && pwd)
reps=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
ops=${HEAPBENCH_OPS:-2000000}
py=$(command -v python3)
case "$py" in */shims/*) py=$(pyenv which python3) ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

workload() {
    case "$1" in
    a) echo "$build/bin/heapbench 1 $ops" ;;
    b) echo "$build/bin/heapbench 2 $ops" ;;
    c) echo "$py $here/pyjson.py 3" ;;
    esac
}

# Prints "wall cpu" seconds of one run of workload $2 under tool $1 (cpu =
# user + system of the whole process tree: heaptrack's recorder included).
run_one() {
    cmd=$(workload "$2")
    t="/usr/bin/time -o $tmp/t -f %e_%U_%S"
    case "$1" in
    plain) PYTHONMALLOC=malloc $t $cmd >/dev/null ;;
    memtrack) LEAKSCOPE_DIR=$tmp/segs PYTHONMALLOC=malloc \
        $t env LD_PRELOAD=$build/lib/libmemtrack.so $cmd >/dev/null ;;
    lsrun) PYTHONMALLOC=malloc $t "$build/bin/leakscope" run --heap --quiet --dir "$tmp/segs" \
        -- $cmd >/dev/null 2>&1 ;;
    heaptrack) PYTHONMALLOC=malloc $t heaptrack -o "$tmp/ht" $cmd >/dev/null 2>&1 ;;
    massif) PYTHONMALLOC=malloc $t valgrind -q --tool=massif --massif-out-file=/dev/null \
        $cmd >/dev/null ;;
    memcheck) PYTHONMALLOC=malloc $t valgrind -q --tool=memcheck $cmd >/dev/null 2>&1 ;;
    esac
    rm -rf "$tmp/segs" "$tmp"/ht*
    tail -1 "$tmp/t" | awk -F_ '{ printf "%s %.2f\n", $1, $2 + $3 }'
}

tools=${HEAPBENCH_TOOLS:-"plain memtrack lsrun heaptrack massif memcheck"}
for r in $(seq "$reps"); do
    for w in a b c; do
        for t in $tools; do
            echo "$w $t $(run_one $t $w)" >>"$tmp/times"
        done
    done
    echo "repetition $r of $reps done" >&2
done

# Metadata of memtrack's allocation table per live allocation, from the
# summary of a run of workload (a) (100000 live blocks at the peak).
"$build/bin/leakscope" run --heap --quiet --dir "$tmp/segs" --summary "$tmp/s.json" -- \
    "$build/bin/heapbench" 1 "$ops" >/dev/null

python3 - "$tmp/times" "$tmp/s.json" "$reps" <<'PY'
import json, statistics, sys
times, cpu = {}, {}
for line in open(sys.argv[1]):
    w, t, s, c = line.split()
    times.setdefault((w, t), []).append(float(s))
    cpu.setdefault((w, t), []).append(float(c))
tools = [t for t in ["plain", "memtrack", "lsrun", "heaptrack", "massif", "memcheck"]
         if ("a", t) in times]
names = {"a": "(a) 1 thread", "b": "(b) 2 threads", "c": "(c) python3 JSON"}
for title, data in (("wall time", times), ("CPU time (user + system)", cpu)):
    print("\n%s, median of %s runs, seconds (ratio to plain)\n" % (title, sys.argv[3]))
    print("| workload | " + " | ".join(tools) + " |")
    print("|---" * (len(tools) + 1) + "|")
    for w in "abc":
        base = statistics.median(data[(w, "plain")])
        cells = []
        for t in tools:
            m = statistics.median(data[(w, t)])
            cells.append("%.2f s" % m if t == "plain" else "%.2f s (%.2fx)" % (m, m / base))
        print("| %s | %s |" % (names[w], " | ".join(cells)))
heap = json.load(open(sys.argv[2]))["processes"][0]["heap"]
print("\nmemtrack metadata at the peak of (a): %d bytes for 100000 live blocks = %.1f bytes each"
      % (heap["metadata_bytes"], heap["metadata_bytes"] / 100000))
PY
