#!/usr/bin/env bash
# `leakscope attach` on a program we did not write: Debian's python3 (no
# frame pointers, stripped), driven line by line. Counts since attach match
# what it was told to do and what /proc says, every creation stack unwinds
# with DWARF, the subsystems match the shims' for the same script, and
# nothing stays loaded. Needs: LEAKSCOPE; root, bpftool, /usr/bin/python3.
. "$(dirname "$0")/lib.sh"
S="$TMP/attach.json"
cat >"$TMP/driven.py" <<'PY'
import os, socket, sys
held = []
print("ready", os.getpid(), flush=True)
for line in sys.stdin:
    cmd, n = line.split()[0], int((line.split() + ["0"])[1])
    if cmd == "open":
        held += [open("/etc/hostname") for _ in range(n)]
    elif cmd == "sock":
        held += [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    elif cmd == "pipe":
        for _ in range(n):
            r, w = os.pipe()
            held += [os.fdopen(r), os.fdopen(w, "w")]
    elif cmd == "close":
        for _ in range(n):
            held.pop().close()
    elif cmd == "quit":
        break
    print("ok", flush=True)
PY

mkfifo "$TMP/in" "$TMP/out"
isolated /usr/bin/python3 "$TMP/driven.py" <"$TMP/in" >"$TMP/out" 2>"$TMP/py.err" &
CLEANUP+=("kill -9 $!")
exec {W}>"$TMP/in" {R}<"$TMP/out"
read -r -t 20 line <&$R
pid=${line#ready }
tell() {
  echo "$1" >&$W
  read -r -t 20 line <&$R
  [ "$line" = ok ] || not_ok "python did not answer '$1'"
}

"$LEAKSCOPE" attach "$pid" --fd --summary "$S" 2>"$TMP/attach.log" </dev/null &
apid=$!
CLEANUP+=("kill -9 $apid")
for _ in $(seq 100); do grep -q "tracing pid" "$TMP/attach.log" && break; sleep 0.1; done
ids=$(bpf_ids $apid)
tell "open 6"
tell "sock 4"
tell "pipe 3"
tell "close 2"
kernel_open=$(ls /proc/$pid/fd | wc -l)
kill -INT $apid
wait $apid
check "attach exits 0" 0 $?
P=".processes[] | select(.pid==$pid) | .fd"
check "files: 6 opened since attach, all open" "6 6" "$(jq -r "$P.by_subsystem.file | \"\(.opened) \(.open)\"" "$S")"
check "sockets: 4 opened since attach" 4 "$(jq "$P.by_subsystem.socket.opened" "$S")"
check "pipes: 6 ends opened, the 2 closed last were pipe ends" "6 4 2" \
  "$(jq -r "$P.by_subsystem.pipe | \"\(.opened) \(.open) \(.closed)\"" "$S")"
check "open total equals the kernel's" "$kernel_open" "$(jq "$P.open_total" "$S")"
unwound=$(sed -n 's/.*call sites: \([0-9]*\) of \([0-9]*\) creation stacks unwound.*/\1 \2/p' "$TMP/attach.log")
check "every creation stack unwound with DWARF (6 files, 4 sockets, 3 pipes)" "13 13" "$unwound"
check_true "sites have more than the syscall frame" \
  test "$(jq "[$P.sites[] | select(.subsystem==\"file\") | .frames | length] | max" "$S")" -gt 3
check_true "attach held programs while tracing" test "$(echo "$ids" | grep -c '^prog:')" -ge 4
check "nothing left loaded" 0 "$(still_loaded "$ids")"

# The shims on the same script: the script's descriptors land in the same
# subsystems. Under the shims python's start-up files count too, and python
# closes everything at exit, so compare what was opened: sockets and pipes
# exactly (python opens none of its own), files at least the script's 6.
SH="$TMP/shims.json"
printf 'open 6\nsock 4\npipe 3\nclose 2\nquit\n' |
  lks run --fd --summary "$SH" -- /usr/bin/python3 "$TMP/driven.py" >/dev/null 2>&1
SP='.processes[] | select(.comm | startswith("python")) | .fd'
check "sockets and pipes: same subsystems and counts as the shims" \
  "$(jq -r "$SP.by_subsystem | \"socket:\(.socket.opened) pipe:\(.pipe.opened)\"" "$SH")" \
  "$(jq -r "$P.by_subsystem | \"socket:\(.socket.opened) pipe:\(.pipe.opened)\"" "$S")"
check_true "files: the shims put /etc/hostname in 'file' too" \
  test "$(jq "$SP.by_subsystem.file.opened" "$SH")" -ge 6
finish
