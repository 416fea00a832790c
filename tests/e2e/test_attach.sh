#!/usr/bin/env bash
# `leakscope attach` end to end (root): attach to a running program the test
# drives line by line (tests/probes/attachee.c, built without frame
# pointers), and check against what it was told to do: descriptor and heap
# counts since attach exactly, call sites naming its functions (DWARF
# unwinding), the same subsystems the shims give for the same program,
# nothing left loaded after detach however it ended, and a clear exit 2
# without privileges or for a bad target.
# Needs: LEAKSCOPE; attachee beside it; root, bpftool.
. "$(dirname "$0")/lib.sh"
ATTACHEE=${ATTACHEE:-$(dirname "$LEAKSCOPE")/attachee}
S="$TMP/attach.json"


# start_attachee NAME: runs attachee fed and read through two fifos whose
# descriptors are NAME_w and NAME_r; its pid in ATT_PID.
start_attachee() {
  local n=$1 line fdr
  mkfifo "$TMP/$n.in" "$TMP/$n.out"
  isolated "$ATTACHEE" <"$TMP/$n.in" >"$TMP/$n.out" 2>&1 &
  CLEANUP+=("kill -9 $!")
  eval "exec {${n}_w}>\"$TMP/$n.in\" {${n}_r}<\"$TMP/$n.out\""
  fdr=$(eval echo "\$${n}_r")
  read -r -t 10 line <&"$fdr"
  ATT_PID=${line#ready }
}
# tell NAME CMD: sends one command and waits for its "ok".
tell() {
  local fdw fdr line
  fdw=$(eval echo "\$${1}_w")
  fdr=$(eval echo "\$${1}_r")
  echo "$2" >&"$fdw"
  read -r -t 10 line <&"$fdr"
  [ "$line" = ok ] || not_ok "attachee did not answer '$2'"
}
# attach_bg LOG ARGS...: leakscope attach in the background, waits until traced.
attach_bg() {
  local log=$1
  shift
  "$LEAKSCOPE" attach "$@" 2>"$log" </dev/null &
  ATTACH_PID=$! # the command itself: signals reach it
  CLEANUP+=("kill -9 $ATTACH_PID")
  for _ in $(seq 100); do
    if grep -q "tracing pid" "$log"; then
      ATTACH_IDS=$(bpf_ids $ATTACH_PID)
      return 0
    fi
    kill -0 $ATTACH_PID 2>/dev/null || break
    sleep 0.1
  done
  not_ok "attach did not start: $(cat "$log")"
  return 1
}

# ---- 1. counts since attach, call sites, stop on SIGINT ----
start_attachee a
pid=$ATT_PID
attach_bg "$TMP/a.log" "$pid" --summary "$S"
tell a "open 5"
tell a "pipe 2"
tell a "sock 3"
tell a "close 1"
tell a "malloc 7 1000"
tell a "churn 100"
tell a "free 9"
tell a "malloc 4 2000"
kernel_open=$(ls /proc/$pid/fd | wc -l)
kill -INT $ATTACH_PID
wait $ATTACH_PID
check "attach exits 0 on SIGINT" 0 $?
P=".processes[] | select(.pid==$pid)"
check "producer is the probe, one process" 1 "$(jq "[$P] | length" "$S")"
check "files opened since attach" "5 5 0" "$(jq -r "$P.fd.by_subsystem.file | \"\(.opened) \(.open) \(.closed)\"" "$S")"
check "pipes: 4 created since attach at attachee_make_pipes" 4 \
  "$(jq "[$P.fd.sites[] | select(.frames[0] | startswith(\"attachee_make_pipes \"))] | .[0].opened" "$S")"
check "sockets: 3 opened, 1 closed" "3 2 1" "$(jq -r "$P.fd.by_subsystem.socket | \"\(.opened) \(.open) \(.closed)\"" "$S")"
check "open total equals the kernel's count" "$kernel_open" "$(jq "$P.fd.open_total" "$S")"
check "file site: attachee_open_files called from main (no frame pointers)" \
  "attachee_open_files main" \
  "$(jq -r "[$P.fd.sites[] | select(.subsystem==\"file\")] | .[0].frames[0:2] | map(split(\" \")[0]) | join(\" \")" "$S")"
check "socket site names attachee_make_sockets" 3 \
  "$(jq "[$P.fd.sites[] | select(.frames[0] | startswith(\"attachee_make_sockets \"))] | .[0].opened" "$S")"
check "heap: live bytes since attach are the 4 blocks of 2000" 8000 \
  "$(jq "[$P.heap.by_subsystem[].live_bytes] | add" "$S")"
check "heap: live allocations since attach" 4 "$(jq "[$P.heap.by_subsystem[].live_allocs] | add" "$S")"
check "heap: allocations since attach (7 + 100 + 4)" 111 "$(jq "[$P.heap.by_subsystem[].allocs] | add" "$S")"
check "heap: frees of pre-attach blocks counted apart" 2 "$(jq "$P.heap.unknown_frees" "$S")"
check "heap: frees of blocks seen since attach (100 + 7)" 107 "$(jq "[$P.heap.by_subsystem[].frees] | add" "$S")"
check "heap site names attachee_alloc_blocks" 8000 \
  "$(jq "[$P.heap.sites[] | select(.frames[0] | startswith(\"attachee_alloc_blocks \"))] | map(.live_bytes) | add" "$S")"
check_true "text says what came before attach" grep -q "allocations made before are unknown (2 frees" "$TMP/a.log"
check_true "text says how stacks were unwound" grep -qE "call sites: [0-9]+ of [0-9]+ creation stacks unwound" "$TMP/a.log"
check_true "summary names the file leak's call site" \
  grep -q "5 file descriptors in pid $pid (attachee), opened at attachee_open_files" "$TMP/a.log"
check_true "attach held programs, maps and links while tracing" \
  test "$(echo "$ATTACH_IDS" | grep -c '^prog:')" -ge 4 -a "$(echo "$ATTACH_IDS" | grep -c '^link:')" -ge 4
check "nothing left loaded after SIGINT" 0 "$(still_loaded "$ATTACH_IDS")"
check "segment removed after the summary" 0 "$(ls "$LEAKSCOPE_DIR" | wc -l)"
check_true "attach and detach times are reported (bench/probes measures them)" \
  grep -qE "attached in [0-9.]+ s, detached in [0-9.]+ s" "$TMP/a.log"

# ---- 2. the same program under the shims: same subsystems per call site ----
SH="$TMP/shims.json"
printf 'open 5\npipe 2\nsock 3\nclose 1\nmalloc 7 1000\nfree 7\nmalloc 4 2000\nquit\n' |
  lks run --summary "$SH" -- "$ATTACHEE" >/dev/null 2>&1
sites() { # FILE PID-SELECTOR: "function:subsystem" of descriptor sites, sorted
  jq -r "$2 | .fd.sites[] | select(.frames[0] | startswith(\"attachee_\")) | \"\(.frames[0] | split(\" \")[0]):\(.subsystem):\(.opened)\"" "$1" | sort | tr '\n' ' '
}
check "descriptor sites and subsystems match the shims'" \
  "$(sites "$SH" '.processes[] | select(.comm=="attachee")')" "$(sites "$S" "$P")"
hsub() { jq -r "$2 | .heap.sites[] | select(.frames[0] | startswith(\"attachee_alloc_blocks\")) | .subsystem" "$1" | sort -u; }
check "heap site subsystem matches the shims'" \
  "$(hsub "$SH" '.processes[] | select(.comm=="attachee")')" "$(hsub "$S" "$P")"

# ---- 3. the target exits: attach ends by itself; --duration and SIGTERM ----
start_attachee b
pid2=$ATT_PID
attach_bg "$TMP/b.log" "$pid2" --fd --summary "$TMP/b.json"
tell b "open 2"
echo quit >&"$b_w"
wait $ATTACH_PID
check "attach ends when the target exits, status 0" 0 $?
check "exited target marked exited" true "$(jq ".processes[] | select(.pid==$pid2) | .exited" "$TMP/b.json")"
check "nothing left loaded after the target exited" 0 "$(still_loaded "$ATTACH_IDS")"

start_attachee c
pid3=$ATT_PID
attach_bg "$TMP/c.log" "$pid3" --duration 1 --quiet
wait $ATTACH_PID
check "--duration ends attach, status 0" 0 $?
check "nothing left loaded after --duration" 0 "$(still_loaded "$ATTACH_IDS")"
attach_bg "$TMP/c2.log" "$pid3" --heap --quiet
kill -TERM $ATTACH_PID
wait $ATTACH_PID
check "SIGTERM ends attach, status 0" 0 $?
check "nothing left loaded after SIGTERM" 0 "$(still_loaded "$ATTACH_IDS")"
tell c "churn 10"

# ---- 4. --sample-bytes: estimates with their error ----
# 2000 live blocks of 1000 bytes (2 MB) sampled about once per 4096 bytes:
# ~490 samples, a standard deviation of ~9%; the estimate must fall within
# 4 of its own standard deviations of the truth (fails ~1 run in 15000).
attach_bg "$TMP/s.log" "$pid3" --heap --sample-bytes 4096 --summary "$TMP/s.json"
tell c "malloc 2000 1000"
kill -INT $ATTACH_PID
wait $ATTACH_PID
est=$(sed -n 's/.*live heap estimate \([0-9]*\) bytes +\/- \([0-9]*\).*/\1 \2/p' "$TMP/s.log")
check_true "sampled: estimate and error printed ($est)" test -n "$est"
check_true "sampled: 2000000 bytes within 4 sd of the estimate ($est)" \
  awk -v e="${est% *}" -v sd="${est#* }" 'BEGIN { d = e - 2000000; if (d < 0) d = -d; exit !(sd > 0 && sd < 400000 && d <= 4 * sd) }'
check_true "sampled: fewer blocks recorded than made" \
  test "$(jq "[.processes[0].heap.by_subsystem[].allocs] | add" "$TMP/s.json")" -lt 2000
check "nothing left loaded after sampling" 0 "$(still_loaded "$ATTACH_IDS")"

# ---- 5. cannot trace: one clear message, exit 2, nothing loaded ----
lks attach 999999999 >/dev/null 2>"$TMP/e1"
check "bad pid: exit 2" 2 $?
check_true "bad pid: says so" grep -q "bad pid\|no such process" "$TMP/e1"
lks attach 4000000 >/dev/null 2>"$TMP/e2"
check "missing process: exit 2" 2 $?
check_true "missing process: says no such process" grep -q "no such process" "$TMP/e2"
setpriv --inh-caps=-all --bounding-set=-all "$LEAKSCOPE" attach "$pid3" 2>"$TMP/e3" >/dev/null
check "no capabilities: exit 2" 2 $?
check_true "no capabilities: names what is missing" grep -q "needs CAP_BPF and CAP_PERFMON" "$TMP/e3"
check "no capabilities: one line" 1 "$(wc -l <"$TMP/e3")"
NB=$(mktemp -d /tmp/lks-e2e-nobody-XXXXXX)
CLEANUP+=("rm -rf $NB")
chown nobody "$NB"
setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
  "$LEAKSCOPE" attach --dir "$NB" "$pid3" 2>"$TMP/e4" >/dev/null
check "as user nobody: exit 2" 2 $?
check_true "as user nobody: names what is missing" grep -q "needs CAP_BPF" "$TMP/e4"
check "attachee survived every attach" ok "$(tell c 'open 1' && echo ok)"

finish
