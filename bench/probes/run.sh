#!/usr/bin/env bash
# `leakscope attach` against the anchors, side by side in one run on this
# machine, each tracer attached to an already running workload (attachbench
# waits on stdin until the tracer is in place, then times itself).
#   file: open+close pairs    heap: malloc/calloc/realloc/free churn
# Anchors: bpftrace with 3 syscall tracepoints; bpftrace uprobes on libc's
# open/close; a memleak-style bpftrace script (uprobes + uretprobes on the
# allocator, live table keyed by address, user stacks); bcc's memleak and
# opensnoop when they can run here (they need kernel headers and kprobes).
# Medians of REPS interleaved runs; ratios to the baseline. Every tracer is
# given the pid (bpftrace -p), so uprobes exist only in the workload: a
# uprobe on libc without a pid traps in every process of the machine.
# usage: bench/probes/run.sh [BUILD_DIR] [FILE_N] [HEAP_N] [REPS]     (root)
set -uo pipefail
BUILD=${1:-build}
FILE_N=${2:-100000}
HEAP_N=${3:-300000}
REPS=${4:-3}
BENCH="$BUILD/bin/attachbench"
LKS="$BUILD/bin/leakscope"
TMP=$(mktemp -d /tmp/attachbench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export LEAKSCOPE_DIR="$TMP/segs"
# bpftrace raises RLIMIT_MEMLOCK itself and prints an ERROR when it cannot
# (no CAP_SYS_RESOURCE in some containers), then works anyway: BPF memory is
# charged to the cgroup since Linux 5.11. That line is not a failure.
ulimit -l unlimited 2>/dev/null || true
# bpftrace finds syscall tracepoints through tracefs.
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# one WORKLOAD N TOOL: prints ns/op, or "-" if the tracer did not start.
one() {
  local w=$1 n=$2 tool=$3 pid line tpid="" ready=0
  rm -f "$TMP/in" "$TMP/out"
  : >"$TMP/tool.log" # the previous tool's log must not speak for this one
  mkfifo "$TMP/in" "$TMP/out"
  "$BENCH" "$w" "$n" <"$TMP/in" >"$TMP/out" &
  local bpid=$!
  exec {W}>"$TMP/in" {R}<"$TMP/out"
  read -r line <&$R
  pid=${line#ready }
  local libc
  libc=$(awk '$6 ~ /libc\.so/ {print $6; exit}' /proc/$pid/maps)
  case $tool in
    baseline) ready=1 ;;
    attach-fd|attach-heap|attach-heap-sampled)
      local opt=--fd
      [ "$tool" = attach-heap ] && opt=--heap
      [ "$tool" = attach-heap-sampled ] && opt="--heap --sample-bytes 524288"
      "$LKS" attach "$pid" $opt 2>"$TMP/tool.log" &
      tpid=$!
      for _ in $(seq 100); do grep -q "tracing pid" "$TMP/tool.log" && { ready=1; break; }; sleep 0.1; done ;;
    bpftrace-tp3)
      bpftrace -p "$pid" -e "tracepoint:syscalls:sys_enter_openat /pid == $pid/ { @open[tid] = nsecs; }
        tracepoint:syscalls:sys_exit_openat /pid == $pid/ { @opened = count(); delete(@open[tid]); }
        tracepoint:syscalls:sys_enter_close /pid == $pid/ { @closed = count(); }" >"$TMP/tool.log" 2>&1 &
      tpid=$! ;;
    bpftrace-libc-uprobes)
      bpftrace -p "$pid" -e "uprobe:$libc:open /pid == $pid/ { @open[ustack] = count(); }
        uretprobe:$libc:open /pid == $pid/ { @fds = count(); }
        uprobe:$libc:close /pid == $pid/ { @close = count(); }" >"$TMP/tool.log" 2>&1 &
      tpid=$! ;;
    bpftrace-memleak)
      bpftrace -p "$pid" -e "uprobe:$libc:malloc,uprobe:$libc:valloc /pid == $pid/ { @size[tid] = arg0; @stk[tid] = ustack; }
        uprobe:$libc:calloc /pid == $pid/ { @size[tid] = arg0 * arg1; @stk[tid] = ustack; }
        uprobe:$libc:realloc /pid == $pid/ { @size[tid] = arg1; @stk[tid] = ustack; if (arg0) { delete(@live[arg0]); } }
        uretprobe:$libc:malloc,uretprobe:$libc:calloc,uretprobe:$libc:realloc,uretprobe:$libc:valloc /pid == $pid/ {
          @live[retval] = @size[tid]; @bystack[@stk[tid]] = sum(@size[tid]); delete(@size[tid]); delete(@stk[tid]); }
        uprobe:$libc:free /pid == $pid/ { delete(@live[arg0]); }" >"$TMP/tool.log" 2>&1 &
      tpid=$! ;;
    bcc-memleak)
      memleak-bpfcc -p "$pid" 3600 >"$TMP/tool.log" 2>&1 &
      tpid=$! ;;
    bcc-opensnoop)
      opensnoop-bpfcc -p "$pid" >"$TMP/tool.log" 2>&1 &
      tpid=$! ;;
  esac
  if [ $ready = 0 ]; then
    for _ in $(seq 300); do
      grep -qE "Attaching|Tracing|PID" "$TMP/tool.log" && { ready=1; sleep 1; break; }
      kill -0 "$tpid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  if [ $ready = 0 ]; then
    echo "$tool: did not start: $(grep -m1 -iE 'error|exception|cannot' "$TMP/tool.log")" >>"$TMP/failures"
    kill -9 "$bpid" 2>/dev/null
    [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null
    exec {W}>&- {R}<&-
    wait 2>/dev/null
    echo -
    return
  fi
  echo go >&$W
  read -r line <&$R
  exec {W}>&- {R}<&-
  # SIGTERM: background jobs of a script ignore SIGINT, and python (bcc)
  # keeps ignoring it.
  [ -n "$tpid" ] && { kill -TERM "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null; }
  wait "$bpid" 2>/dev/null
  # A tracer that died while the workload ran measured nothing.
  if grep -v RLIMIT_MEMLOCK "$TMP/tool.log" | grep -qE 'Traceback|ERROR|cannot attach'; then
    echo "$tool: failed while running: $(grep -v RLIMIT_MEMLOCK "$TMP/tool.log" | grep -m1 -E 'Exception|ERROR|cannot')" >>"$TMP/failures"
    echo -
    return
  fi
  if [[ $tool == attach-* ]]; then
    sed -n 's/.*attached in \([0-9.]*\) s, detached in \([0-9.]*\) s.*/\1 \2/p' "$TMP/tool.log" >>"$TMP/attach-times"
  fi
  echo "$line" | awk '{print $2}'
}

FILE_TOOLS=(baseline attach-fd bpftrace-tp3 bpftrace-libc-uprobes bcc-opensnoop)
HEAP_TOOLS=(baseline attach-heap attach-heap-sampled bpftrace-memleak bcc-memleak)
declare -A V
for _ in $(seq "$REPS"); do
  for t in "${FILE_TOOLS[@]}"; do V[file,$t]+="$(one file "$FILE_N" "$t") "; done
  for t in "${HEAP_TOOLS[@]}"; do V[heap,$t]+="$(one heap "$HEAP_N" "$t") "; done
done

table() {
  local w=$1 base
  shift
  base=$(printf '%s\n' ${V[$w,baseline]} | median)
  printf '| %s workload | ns/op (median of %d) | slowdown |\n|---|---|---|\n' "$w" "$REPS"
  for t in "$@"; do
    local vals=${V[$w,$t]}
    if [[ $vals == *-* ]]; then printf '| %s | did not run | - |\n' "$t"; continue; fi
    local m
    m=$(printf '%s\n' $vals | median)
    printf '| %s | %.0f | %.2fx |\n' "$t" "$m" "$(echo "$m / $base" | bc -l)"
  done
  echo
}
table file "${FILE_TOOLS[@]}"
table heap "${HEAP_TOOLS[@]}"
if [ -s "$TMP/attach-times" ]; then
  echo "leakscope attach: attach s median $(awk '{print $1}' "$TMP/attach-times" | median), detach s median $(awk '{print $2}' "$TMP/attach-times" | median), max $(sort -k1 -n "$TMP/attach-times" | tail -1 | awk '{print $1}') / $(sort -k2 -n "$TMP/attach-times" | tail -1 | awk '{print $2}')"
fi
[ -s "$TMP/failures" ] && { echo; echo "did not run:"; sort -u "$TMP/failures"; }
exit 0
