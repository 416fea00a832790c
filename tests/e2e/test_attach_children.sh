#!/usr/bin/env bash
# `leakscope attach` following the children a process forks while attached
# (issue 12): Debian's python3 forks children (one of them a grandchild, one
# a subprocess that execs another interpreter) after attach is up; each
# keeps a known number of files and writes what its /proc/self/fd holds.
# The children's descriptors must be counted in the children, with the
# counts the kernel gave, the parent's not disturbed. Then a target that
# exits while attached (its child still running): attach ends by itself
# with a summary, nothing left loaded. And 100 children one after the
# other: more than attach follows at once, all followed.
# Needs: LEAKSCOPE; root, bpftool, /usr/bin/python3.11.
. "$(dirname "$0")/lib.sh"
D=$TMP/run
mkdir -m 700 "$D"
cat >"$TMP/forker.py" <<'PY'
import json, os, subprocess, sys, time
d = sys.argv[1]

def truth(role):
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass  # the listing's own descriptor
    text = json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "fds": fds})
    fd = os.open(os.path.join(d, role + ".truth"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)

def wait_for(name):
    while not os.path.exists(os.path.join(d, name)):
        time.sleep(0.02)

def keep(tag, n):
    return [open(os.path.join(d, "%s.%d" % (tag, i)), "w") for i in range(n)]

if sys.argv[2:] == ["exec"]:  # the subprocess, exec'd as python3.11
    held = keep("exec", 6)
    truth("exec")
    os._exit(0)
if sys.argv[2:] == ["exits"]:  # forks a child that keeps 4 files, exits first
    print("ready", os.getpid(), flush=True)
    wait_for("go")
    held = keep("p", 3)
    if os.fork() == 0:
        held += keep("c", 4)
        truth("child")
        wait_for("end")
        os._exit(0)
    wait_for("child.truth")
    os._exit(0)
if sys.argv[2:] == ["many"]:  # 100 children one after the other, 2 files each
    print("ready", os.getpid(), flush=True)
    wait_for("go")
    for i in range(100):
        pid = os.fork()
        if pid == 0:
            held = keep("many", 2)
            os._exit(0)
        os.waitpid(pid, 0)
    open(os.path.join(d, "done"), "w").close()
    wait_for("end")
    os._exit(0)
print("ready", os.getpid(), flush=True)
wait_for("go")
held = keep("pre", 2)
kids = []
for c, k in enumerate([3, 4, 5]):
    pid = os.fork()
    if pid == 0:
        held += keep("child%d" % c, k)
        if c == 2:
            grand = os.fork()
            if grand == 0:
                held += keep("grandchild", 2)
                truth("grandchild")
                wait_for("release")
                os._exit(0)
        truth("child%d" % c)
        wait_for("release")
        if c == 2:
            os.waitpid(grand, 0)
        os._exit(0)
    kids.append(pid)
subprocess.run(["/usr/bin/python3.11", __file__, d, "exec"], check=True)
held += keep("post", 3)
for pid in kids:
    os.waitpid(pid, 0)
truth("parent")
wait_for("end")
PY

# start_target ARGS...: the script, isolated; its pid in TPID once ready.
start_target() {
  isolated /usr/bin/python3 "$TMP/forker.py" "$@" >"$TMP/target.out" 2>&1 </dev/null &
  CLEANUP+=("kill -9 $!")
  for _ in $(seq 100); do grep -q '^ready' "$TMP/target.out" && break; sleep 0.1; done
  TPID=$(awk '/^ready/ {print $2}' "$TMP/target.out")
}
# attach_bg LOG ARGS...: leakscope attach in the background, until it traces.
attach_bg() {
  local log=$1
  shift
  "$LEAKSCOPE" attach "$@" 2>"$log" </dev/null &
  APID=$!
  CLEANUP+=("kill -9 $APID")
  # Loading and verifying the probes takes a second alone, far longer on a
  # loaded machine: 30 s before the test goes on without it.
  for _ in $(seq 300); do grep -q "tracing pid" "$log" && break; sleep 0.1; done
  IDS=$(bpf_ids $APID)
}
# wait_files DIR NAME...: until every DIR/NAME exists (20 s at most).
wait_files() {
  local d=$1 f missing
  shift
  for _ in $(seq 200); do
    missing=0
    for f in "$@"; do [ -f "$d/$f" ] || missing=1; done
    [ $missing -eq 0 ] && return 0
    sleep 0.1
  done
  return 1
}

# ---- 1. children forked while attached, counted where they are ----
start_target "$D"
parent=$TPID
S=$TMP/children.json
attach_bg "$TMP/children.log" "$parent" --fd --duration 120 --summary "$S"
touch "$D/go"
check_true "children, grandchild and the exec'd subprocess wrote their truth" \
  wait_files "$D" child0.truth child1.truth child2.truth grandchild.truth exec.truth
touch "$D/release"
check_true "the parent reaped them and wrote its truth" wait_files "$D" parent.truth
kill -INT $APID
wait $APID
check "attach exits 0" 0 $?
touch "$D/end"

truth() { jq -r "$2" "$D/$1.truth"; }
P() { jq -r ".processes[] | select(.pid==$1) | $2" "$S"; }
ours() { jq "[.fds[] | select(startswith(\"$D/\"))] | length" "$D/$1.truth"; }
declare -A K=([child0]=3 [child1]=4 [child2]=5 [grandchild]=2 [exec]=6 [parent]=5)
for role in parent child0 child1 child2 grandchild exec; do
  pid=$(truth $role .pid)
  check "$role: in the summary, ppid as the kernel said" "$(truth $role .ppid)" "$(P "$pid" .ppid)"
  check "$role: open descriptors are /proc/$pid/fd's" "$(truth $role '.fds | length')" \
    "$(P "$pid" .fd.open_total)"
  check "$role: files open are /proc's" "$(ours $role)" "$(P "$pid" .fd.by_subsystem.file.open)"
  # (sites: without Python frames, CPython's adaptive calls can split one line in two)
  check "$role: holds its own ${K[$role]} files in its own sites" "${K[$role]}" \
    "$(P "$pid" '[.fd.sites[] | select(.subsystem=="file") | .open] | add')"
  check "$role: no close of a descriptor it did not know" 0 "$(P "$pid" .fd.unknown_closes)"
done
c2=$(truth child2 .pid)
for role in child0 child1 child2; do
  pid=$(truth $role .pid)
  check "$role: forked from the parent without exec, exited" "$parent true" \
    "$(P "$pid" '"\(.forked_from) \(.exited)"')"
  check "$role: the parent's 2 files are inherited, never its own" 2 \
    "$(P "$pid" '[.fd.inherited_sites[] | select(.subsystem=="file") | .open] | add')"
done
gpid=$(truth grandchild .pid)
check "grandchild: forked from child2" "$c2" "$(P "$gpid" .forked_from)"
check "grandchild: inherits child2's 5 files and the parent's 2" 7 \
  "$(P "$gpid" '[.fd.inherited_sites[] | select(.subsystem=="file") | .open] | add')"
epid=$(truth exec .pid)
check "exec'd subprocess: named by its new program, not a fork any more" "python3.11 /usr/bin/python3.11 0" \
  "$(P "$epid" '"\(.comm) \(.exe) \(.forked_from)"')"
check "parent: still running at detach" "true false" "$(P "$parent" '"\(.running) \(.exited)"')"
check "parent: none of its children's files" "5 5" \
  "$(P "$parent" '.fd.by_subsystem.file | "\(.open) \(.opened - .closed)"')"
check "nothing left loaded" 0 "$(still_loaded "$IDS")"
check "segments removed after the summary" 0 "$(ls "$LEAKSCOPE_DIR" | wc -l)"

# ---- 2. the target exits while attached, its child still running ----
D2=$TMP/exits
mkdir -m 700 "$D2"
start_target "$D2" exits
pid=$TPID
S2=$TMP/exits.json
attach_bg "$TMP/exits.log" "$pid" --duration 120 --summary "$S2"
start=$SECONDS
touch "$D2/go"
wait $APID
status=$?
check "attach ends by itself when the target exits, status 0" 0 $status
# Evidence for a status 2 seen once in CI (not reproduced): what attach said.
[ "$status" -eq 0 ] || sed 's/^/# attach: /' "$TMP/exits.log"
check_true "well before --duration" test $((SECONDS - start)) -lt 60
child=$(jq .pid "$D2/child.truth")
check "summary: the target exited with its 3 files" "true 3" \
  "$(jq -r ".processes[] | select(.pid==$pid) | \"\(.exited) \(.fd.by_subsystem.file.open)\"" "$S2")"
check "summary: its child still running, with /proc's count" \
  "true $(jq '.fds | length' "$D2/child.truth")" \
  "$(jq -r ".processes[] | select(.pid==$child) | \"\(.running) \(.fd.open_total)\"" "$S2")"
check_true "text summary says the child still runs" grep -q "pid $child .*\[still running\]" "$TMP/exits.log"
check "nothing left loaded after the target exited" 0 "$(still_loaded "$IDS")"
check "segments removed" 0 "$(ls "$LEAKSCOPE_DIR" | wc -l)"
touch "$D2/end"

# ---- 3. more children over time than attach follows at once ----
D3=$TMP/many
mkdir -m 700 "$D3"
start_target "$D3" many
pid=$TPID
attach_bg "$TMP/many.log" "$pid" --fd --duration 120 --summary "$TMP/many.json"
touch "$D3/go"
check_true "the 100 children ran" wait_files "$D3" done
kill -INT $APID
wait $APID
check "attach exits 0" 0 $?
touch "$D3/end"
check "all 100 children followed, each with its 2 files" "100 2" \
  "$(jq -r "[.processes[] | select(.forked_from==$pid) | .fd.by_subsystem.file.open] | \"\(length) \(unique | join(\",\"))\"" "$TMP/many.json")"
check_true "none missed" test -z "$(grep 'not followed' "$TMP/many.log")"
finish
