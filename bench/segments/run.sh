#!/usr/bin/env bash
# bench/segments/run.sh BUILD [N] [REPS] [OTHER_LEAKSCOPE...]
# `leakscope ls` over N segments (default 1,000): median wall time and peak
# RSS of REPS runs (default 5), for BUILD's leakscope and, in the same run,
# for any other leakscope binaries given (e.g. a build of main), in turn.
# The segments are sparse copies of one real segment (leaky_fds under a plain
# preload) in a private directory under /dev/shm, where segments live.
set -euo pipefail
BUILD=$(realpath "$1")
N=${2:-1000}
REPS=${3:-5}
shift $(($# < 3 ? $# : 3))
BINS=("$BUILD/bin/leakscope" "$@")
D=$(mktemp -d /dev/shm/lks-bench-XXXXXX)
trap 'rm -rf "$D"' EXIT
chmod 700 "$D"
mkdir -m 700 "$D/src" "$D/many"
LEAKSCOPE_DIR="$D/src" LD_PRELOAD="$BUILD/lib/libfdtrack.so" "$BUILD/bin/leaky_fds" 200 >/dev/null &
wait $!
SRC=$(ls "$D"/src/*.seg | head -1)
"$BUILD/bin/lks-segpatch" "$SRC" clone "$D/many" "$N"
echo "ls over $N segments ($(du -sh "$D/many" | cut -f1) on tmpfs), median of $REPS:"
for rep in $(seq "$REPS"); do
  for bin in "${BINS[@]}"; do
    /usr/bin/python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(sys.argv[1], (time.monotonic() - t) * 1000, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
      "$bin" env LEAKSCOPE_SEGMENT_GRACE=999999 "$bin" ls --dir "$D/many"
  done
done | /usr/bin/python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    b, ms, kb = line.split()
    runs.setdefault(b, []).append((float(ms), int(kb)))
for b, r in runs.items():
    print("  %-60s %9.0f ms  %9.1f MB peak RSS" % (b, statistics.median(x[0] for x in r),
          max(x[1] for x in r) / 1024))'
