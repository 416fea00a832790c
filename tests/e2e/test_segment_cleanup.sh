#!/usr/bin/env bash
# Dead segments are removed by the documented policy (docs/SEGMENTS.md): the
# next traced process of the user, `ls` and exporters remove segments of
# processes that are gone and have been dead longer than the grace period,
# unless kept by `run --keep` or still awaited by a live `leakscope run`.
# Running processes are never touched. `ls` over 1,000 segments reads heads
# only: fast and small.
# Needs: LEAKSCOPE, LEAKY_FDS, FDTRACK.
. "$(dirname "$0")/lib.sh"
SEGPATCH="$(dirname "$LEAKSCOPE")/lks-segpatch"
S="$TMP/summary.json"
mkdir -m 700 "$LEAKSCOPE_DIR"
nseg() { find "$LEAKSCOPE_DIR" -name '*.seg' | wc -l; }

# --- 1,000 short processes under a plain preload, grace 0: each new process
# sweeps, so no more than the ones running at the same time are left.
stream() { for _ in $(seq 250); do LEAKSCOPE_SEGMENT_GRACE=0 LD_PRELOAD="$FDTRACK" /bin/true; done; }
stream & stream & stream & stream &
wait
left=$(nseg)
check_true "1,000 short processes leave at most 4 segments (left $left)" test "$left" -le 4
LEAKSCOPE_SEGMENT_GRACE=0 lks ls >/dev/null
check "ls with grace 0 removes the rest" 0 "$(nseg)"

# --- Within the grace period (default 300 s) an exited process stays readable.
LD_PRELOAD="$FDTRACK" "$LEAKY_FDS" 200 >/dev/null &
lp=$!
wait $lp
LD_PRELOAD="$FDTRACK" /bin/true # a new traced process sweeps; grace protects lp
check_true "exited process listed within the grace period" grep -q "^ *$lp .*exited" <(lks ls)
lks show --json "$lp" >"$TMP/show.json"
check "its final values are readable" 20 "$(jq '.processes[0].fd.by_subsystem.frontier.open' "$TMP/show.json")"

# --- A running process is never removed, whatever the grace.
mkfifo "$TMP/hold"
LD_PRELOAD="$FDTRACK" bash -c 'read -r _ <"$1"' _ "$TMP/hold" &
rp=$!
CLEANUP+=("kill $rp")
listed() { for _ in $(seq 200); do grep -q "^ *$1 " <("$LEAKSCOPE" ls 2>/dev/null) && return; sleep 0.1; done; }
listed $rp
LEAKSCOPE_SEGMENT_GRACE=0 lks ls >"$TMP/ls"
check_true "running process kept and listed as running" grep -q "^ *$rp .*running" "$TMP/ls"
check_true "exited process past grace 0 removed" test ! -e "$LEAKSCOPE_DIR/$lp.seg"
echo >"$TMP/hold"
wait $rp

# --- Killed (no exit record): removed once past the grace period.
LD_PRELOAD="$FDTRACK" bash -c 'read -r _ <"$1"' _ "$TMP/hold" &
kp=$!
listed $kp
kill -9 $kp
wait $kp 2>/dev/null
lks ls >/dev/null
check_true "killed process kept within the grace period" test -e "$LEAKSCOPE_DIR/$kp.seg"
LEAKSCOPE_SEGMENT_GRACE=0 lks ls >/dev/null
check_true "killed process removed past the grace period" test ! -e "$LEAKSCOPE_DIR/$kp.seg"

# --- Killed before its segment was complete (file created, no magic yet):
# removed once its pid is gone and it is older than the grace period.
/bin/true &
gone=$!
wait $gone
: >"$LEAKSCOPE_DIR/$gone.seg"
sleep 30 &
alive=$!
CLEANUP+=("kill $alive")
: >"$LEAKSCOPE_DIR/$alive.seg"
lks ls >/dev/null 2>&1
check_true "unfinished segment kept within the grace period" test -e "$LEAKSCOPE_DIR/$gone.seg"
LEAKSCOPE_SEGMENT_GRACE=0 lks ls >/dev/null 2>&1
check_true "unfinished segment of a gone pid removed past grace" test ! -e "$LEAKSCOPE_DIR/$gone.seg"
check_true "unfinished segment of a live pid kept (its writer may be at work)" test -e "$LEAKSCOPE_DIR/$alive.seg"
kill $alive
rm -f "$LEAKSCOPE_DIR/$alive.seg"

# --- run --keep: never swept.
lks run --keep --fd --quiet --summary "$S" -- "$LEAKY_FDS" 20 >/dev/null 2>&1
kp=$(jq '.processes[] | select(.comm=="leaky_fds") | .pid' "$S")
LEAKSCOPE_SEGMENT_GRACE=0 lks ls >/dev/null
check_true "kept segment survives a grace-0 sweep" test -e "$LEAKSCOPE_DIR/$kp.seg"
rm -f "$LEAKSCOPE_DIR/$kp.seg"

# --- A live `leakscope run` keeps its exited children for its summary, even
# when something sweeps with grace 0 in the middle of the run.
lks run --fd --quiet --summary "$S" -- bash -c \
  '/bin/true; /bin/true; LEAKSCOPE_SEGMENT_GRACE=0 "$1" ls >/dev/null; /bin/true' _ "$LEAKSCOPE"
check "run summary has all three children" 3 "$(jq '[.processes[] | select(.comm=="true")] | length' "$S")"

# --- ls over 1,000 segments: heads only. Copies of a real, not-kept segment.
LD_PRELOAD="$FDTRACK" "$LEAKY_FDS" 20 >/dev/null &
sp=$!
wait $sp
mkdir -m 700 "$TMP/many"
"$SEGPATCH" "$LEAKSCOPE_DIR/$sp.seg" clone "$TMP/many" 1000
read -r rc ms kb < <(/usr/bin/python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(rc, int((time.monotonic() - t) * 1000), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
  "$LEAKSCOPE" ls --dir "$TMP/many")
echo "# ls over 1,000 segments: ${ms} ms, peak RSS ${kb} KiB"
check "ls over 1,000 segments exits 0" 0 "$rc"
check_true "ls over 1,000 segments under 5 s (took ${ms} ms)" test "$ms" -lt 5000
check_true "ls over 1,000 segments under 64 MB (peak ${kb} KiB)" test "$kb" -lt 65536
check "all 1,000 listed" 1000 "$("$LEAKSCOPE" ls --dir "$TMP/many" | grep -c leaky_fds)"
LEAKSCOPE_SEGMENT_GRACE=0 "$LEAKSCOPE" ls --dir "$TMP/many" >/dev/null
check "grace-0 ls removes the 1,000 dead ones" 0 "$(find "$TMP/many" -name '*.seg' | wc -l)"

finish
