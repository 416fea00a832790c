# lib.sh - helpers for the end-to-end shell tests: a private temp dir that is
# always removed, free loopback ports, isolation from inherited descriptors,
# and assertions that count results and end with "N passed, N failed".
set -u
PASSED=0
FAILED=0
TMP=$(mktemp -d /tmp/lks-e2e-XXXXXX)
chmod 700 "$TMP"
export LEAKSCOPE_DIR="$TMP/segments"
CLEANUP=()
cleanup() {
  local c
  for c in "${CLEANUP[@]+"${CLEANUP[@]}"}"; do eval "$c" >/dev/null 2>&1 || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
not_ok() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }

# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: expected [$2], got [$3]"; fi
}

# check_true NAME CMD...: passes if CMD exits 0.
check_true() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# isolated CMD...: runs CMD without the descriptors this shell inherited
# (they are not the program's under test, and differ between machines).
isolated() {
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      # 255 is bash reading this script (close-on-exec already); closing it
      # here would move the parent's read offset.
      [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ] && eval "exec $fd>&-" 2>/dev/null
    done
    exec "$@"
  )
}

# lks ARGS...: the leakscope command, isolated.
lks() { isolated "$LEAKSCOPE" "$@"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

# BPF objects (programs, maps, links) held by process $1, as "kind:id".
bpf_ids() {
  grep -hE '^(prog_id|map_id|link_id):' /proc/"$1"/fdinfo/* 2>/dev/null |
    sed 's/_id:[[:space:]]*/:/' | sort -u
}
# How many of those ids (from bpf_ids) still exist in the kernel, once the
# kernel has had up to 10 s to free them (it releases programs and maps
# after an RCU grace period, not when the last descriptor closes).
still_loaded() {
  local n kind id try
  for try in $(seq 100); do
    n=0
    for x in $1; do
      kind=${x%%:*} id=${x#*:}
      bpftool "$kind" show id "$id" >/dev/null 2>&1 && n=$((n + 1))
    done
    [ "$n" -eq 0 ] && break
    sleep 0.1
  done
  echo $n
}
