#!/usr/bin/env bash
# Issue 7 with C programs of known truth (edgeprobe): the descriptor limit,
# closes no hook saw, raw fork, vfork, forked children, pipes, failed
# allocations, call sites behind an allocation wrapper. Every number is held against what the program did and what
# the kernel said (/proc, fcntl), not against what leakscope said before.
# Needs: LEAKSCOPE, EDGEPROBE, jq.
. "$(dirname "$0")/../e2e/lib.sh"
S="$TMP/s.json"
mkdir -p "$LEAKSCOPE_DIR" && chmod 700 "$LEAKSCOPE_DIR"

run_probe() { lks run --quiet --summary "$S" -- "$EDGEPROBE" "$@" >"$TMP/out" 2>"$TMP/err"; }
# q JQ: a value from the summary of the last run
q() { jq -r "$1" "$S"; }
fdj() { jq -r ".processes[0].fd | $1" "$S"; }
# start_traced OUT ARGS...: edgeprobe under the shim in the background; its
# output goes to OUT. BG is the job to wait for.
start_traced() {
  local out=$1
  shift
  isolated env LD_PRELOAD="$FDTRACK" "$EDGEPROBE" "$@" >"$out" 2>&1 &
  BG=$!
  CLEANUP+=("kill $BG")
}
# wait_line FILE PATTERN: until a line matching PATTERN is in FILE (10 s)
wait_line() {
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# 1. At the descriptor limit (RLIMIT_NOFILE 32, filled): the exit
# reconciliation has no descriptor to list /proc/self/fd with.
run_probe limit
read -r _ held _ kernel <"$TMP/out"
check "limit: the kernel held 32 at exit" 32 "$kernel"
check "limit: reconciled without a descriptor" probe "$(fdj .reconciled)"
check "limit: open_total + shim's own = the kernel's 32" 32 "$(fdj '.open_total + .shim_own')"
check "limit: stdio still open" 3 "$(fdj .by_subsystem.stdio.open)"
check "limit: nothing stale" 0 "$(fdj .stale)"
check "limit: nothing unattributed" 0 "$(fdj .unattributed)"
check "limit: the verdict names the holder" "$held edge_hold_files" \
  "$(q '.leaks[0] | "\(.open) \(.site | split(" ")[0])"')"

# ... and `show` on the live process at the limit agrees with /proc/PID/fd.
start_traced "$TMP/live" limit-wait
wait_line "$TMP/live" held
LIVE=$(awk '/^pid/ {print $2}' "$TMP/live")
CLEANUP+=("kill $LIVE")
read -r _ held _ _ < <(grep held "$TMP/live")
lks show --json "$LIVE" >"$TMP/show.json"
procfd=$(ls "/proc/$LIVE/fd" | wc -l)
check "limit show: kernel_open is /proc/PID/fd" "$procfd" "$(jq '.processes[0].fd.kernel_open' "$TMP/show.json")"
check "limit show: nothing unattributed now" 0 "$(jq '.processes[0].fd.unattributed_now' "$TMP/show.json")"
check "limit show: the held files" "$held" \
  "$(jq '[.processes[0].fd.sites[] | select(.frames[0] | startswith("edge_hold_files ")) | .open] | add' "$TMP/show.json")"
kill -TERM $LIVE; wait $BG

# 2. Numbers closed by raw syscall and created again (libuv's way).
run_probe reuse 50
check "reuse: the program closed all 50 sockets" "reused 50" "$(cut -d' ' -f1-2 "$TMP/out")"
check "reuse: 0 sockets open at exit" 0 "$(fdj .by_subsystem.socket.open)"
check "reuse: opened 50, closed 50" "50 50" "$(fdj '.by_subsystem.socket | "\(.opened) \(.closed)"')"
check "reuse: 49 closed unseen (numbers reused), the last found stale" "49 1" \
  "$(fdj '"\(.closed_unseen) \(.stale)"')"
check "reuse: no leak" 0 "$(q '.leaks | length')"

# 3a. vfork whose child closes every descriptor before exec: the parent's
# table stays (5 files leaked, nothing unattributed).
run_probe vfork
check "vfork: the child exec'd" "vfork child status 0" "$(cut -d' ' -f1-4 "$TMP/out")"
check "vfork: parent's 5 leaked files named" "5 edge_leak_files" \
  "$(q '.leaks[0] | "\(.open) \(.site | split(" ")[0])"')"
check "vfork: nothing unattributed or stale in the parent" "0 0" \
  "$(q '.processes[] | select(.comm == "edgeprobe") | .fd | "\(.unattributed) \(.stale)"')"

# 3b. A child made by the fork syscall (no atfork handler) writes its own
# segment, never the parent's; the parent stays "running".
start_traced "$TMP/raw" rawfork
wait_line "$TMP/raw" "parent .* ready"
RAW=$(awk '/^parent/ {print $2}' "$TMP/raw")
CLEANUP+=("kill $RAW")
child=$(awk '/^child/ {print $2}' "$TMP/raw")
lks show --json "$RAW" >"$TMP/rawp.json"
check "rawfork: parent not marked exited" false "$(jq '.processes[0].exited' "$TMP/rawp.json")"
check "rawfork: parent holds its 3 files, not the child's" "3 0" \
  "$(jq '[.processes[0].fd.sites[] | select(.frames[0] | startswith("edge_leak_files ")) | .open] as $p |
         [.processes[0].fd.sites[] | select(any(.frames[]; startswith("edge_child_files "))) | .open] as $c |
         "\($p | add // 0) \($c | add // 0)"' -r "$TMP/rawp.json")"
check "rawfork: parent's table matches /proc" 0 "$(jq '.processes[0].fd.unattributed_now' "$TMP/rawp.json")"
lks show --json "$child" >"$TMP/rawc.json"
check "rawfork: the child has its own segment, forked from the parent" "$RAW" \
  "$(jq '.processes[0].forked_from' "$TMP/rawc.json")"
check "rawfork: the child's 2 files are its leak" "2 edge_leak_files" \
  "$(jq -r '.leaks[0] | "\(.open) \(.site | split(" ")[0])"' "$TMP/rawc.json")"
kill -TERM $RAW; wait $BG

# 6. A forked worker: the parent's pool is inherited, not the child's leak.
run_probe fork exit
parent=$(awk '/^parent/ {print $2}' "$TMP/out")
child=$(awk '/^child/ {print $2}' "$TMP/out")
check "fork: child's ppid and forked_from" "$parent $parent" \
  "$(q ".processes[] | select(.pid == $child) | \"\(.ppid) \(.forked_from)\"")"
check "fork: 9 inherited (stdio + 6 pooled sockets)" 9 \
  "$(q ".processes[] | select(.pid == $child) | .fd.inherited_by_fork")"
check "fork: the child's inherited pool keeps the parent's site" "6 socket edge_pool_open" \
  "$(q ".processes[] | select(.pid == $child) | .fd.inherited_sites[] | select(.subsystem == \"socket\") | \"\\(.open) \\(.subsystem) \\(.site | split(\" \")[0])\"")"
check "fork: the leaks are the parent's pool and the child's files" \
  "$parent 6 socket edge_pool_open,$child 3 file edge_leak_files" \
  "$(q '[.leaks[] | "\(.pid) \(.open) \(.subsystem) \(.site | split(" ")[0])"] | sort | join(",")' | sed 's/ device / file /')"
lks run -- "$EDGEPROBE" fork exit >"$TMP/out" 2>"$TMP/text"
parent=$(awk '/^parent/ {print $2}' "$TMP/out")
child=$(awk '/^child/ {print $2}' "$TMP/out")
check "fork: the text summary shows the tree, the child under its parent" \
  "pid $parent (edgeprobe) ppid,  pid $child (edgeprobe) ppid $parent, forked from $parent without exec" \
  "$(grep -E "^ *pid ($parent|$child) " "$TMP/text" | sed 's/ppid [0-9]*$/ppid/' | paste -sd,)"

# A live forked child: no phantom unattributed_now from the shim's own pipe.
start_traced "$TMP/fw" fork wait
wait_line "$TMP/fw" "^child"
child=$(awk '/^child/ {print $2}' "$TMP/fw")
lks show --json "$child" >"$TMP/fw.json"
check "fork live: child's kernel_open is /proc" "$(ls /proc/$child/fd | wc -l)" \
  "$(jq '.processes[0].fd.kernel_open' "$TMP/fw.json")"
check "fork live: no phantom unattributed_now" 0 "$(jq '.processes[0].fd.unattributed_now' "$TMP/fw.json")"
kill -TERM "$child"; wait $BG

# A child that left with _exit (a zombie until reaped) is not running.
start_traced "$TMP/fx" fork _exit
wait_line "$TMP/fx" "parent .* ready"
FX=$(awk '/^parent/ {print $2}' "$TMP/fx")
CLEANUP+=("kill $FX")
child=$(awk '/^child/ {print $2}' "$TMP/fx")
check "_exit: the child is a zombie" Z "$(awk '{print $3}' /proc/$child/stat)"
if lks show "$child" | grep -q "still running"; then not_ok "_exit: not [still running]"; else ok "_exit: not [still running]"; fi
check "_exit: ls says exited" exited "$(lks ls | awk -v p="$child" '$1 == p {print $4}')"
kill -TERM $FX; wait $BG

# 7. One pipe and one socketpair held for life are no leak; 3 pipes from
# one site are (6 descriptors).
run_probe pairs 3
check "pairs: one leak, the 3 pipes" "6 pipe" "$(q '[.leaks[] | "\(.open) \(.subsystem)"] | join(",")')"
check "pairs: kernel agrees on 13 tracked" 13 "$(fdj .open_total)"

# 8. Every failed allocation is counted (8 entry points).
lks run --heap --quiet --summary "$S" -- "$EDGEPROBE" allocfail >"$TMP/out" 2>&1
check "allocfail: the program saw 8 failures" "failed allocations 8" "$(cat "$TMP/out")"
check "allocfail: 8 counted" 8 "$(q '.processes[0].heap.failed_allocs')"

# 9. Call sites behind one allocation wrapper, called from five paths at one
# stack depth, two of them through a frame that allocas a different size on
# every call: each path's kept blocks are on sites that name that path, and
# only those (the stack replay must not cross paths or lose them).
lks run --heap --quiet --summary "$S" -- "$EDGEPROBE" wrappers >"$TMP/out" 2>&1
check "wrappers: the program kept its blocks" "kept a 10 b 20 c 30 d 40 e 50" "$(cat "$TMP/out")"
for p in a:10:24 b:20:32 c:30:40 d:40:48 e:50:56; do
  IFS=: read -r name n size <<<"$p"
  check "wrappers: path $name holds $n blocks of $size bytes" "$n $((n * size))" \
    "$(q "[.processes[0].heap.sites[] | select(any(.frames[]; startswith(\"edge_wrap_from_$name \")))] |
          \"\\(map(.live_allocs) | add) \\(map(.live_bytes) | add)\"")"
done
check "wrappers: every kept block is on a site that names its path" 150 \
  "$(q '[.processes[0].heap.sites[] | select(any(.frames[]; startswith("edge_wrap_from_"))) | .live_allocs] | add')"
check "wrappers: no site names two paths" 0 \
  "$(q '[.processes[0].heap.sites[] | select([.frames[] | select(startswith("edge_wrap_from_"))] | length > 1)] | length')"

finish
