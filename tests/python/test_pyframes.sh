#!/bin/bash
# test_pyframes.sh - core/pyframes.c reads the right Python function, file and
# line in Debian's python3 (required) and in every pyenv CPython 3.8-3.13
# found on this machine; an unknown version reads nothing; capturing on every
# malloc under threads, generators and asyncio never faults.
set -euo pipefail
: "${PYPROBE:?}" "${PYDIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
demo=$PYDIR/frames_demo.py
fail=0

line_of() { grep -n "MARK:$1\$" "$demo" | cut -d: -f1; }

# expect OUT NAME STACK: the probe line whose first frame is the leaf's
# function must equal STACK (func|file|line;...) given with marker names.
expect() {
    local out=$1 first=$2 want=$3 got w
    w=$want
    for m in leaf push inner nested gen task thread main_push main_nested main_gen main_task module; do
        w=${w//@$m/|$demo|$(line_of $m)}
    done
    got=$(grep -F " $first|$demo|" "$out" | head -1 | sed 's/^mode=[0-9]* version=[0-9.]* n=[0-9]* //' || true)
    # asyncio's own frames sit under task(); compare our frames only
    got=$(echo "$got" | tr ';' '\n' | grep -F "|$demo|" | paste -sd';' || true)
    if [ "$got" != "$w" ]; then
        echo "FAIL [$py] $first:"; echo "  want $w"; echo "  got  $got"; fail=1
    fi
}

run_one() {
    py=$1
    local out=$tmp/out.$RANDOM
    LD_PRELOAD=$PYPROBE PYPROBE_OUT=$out "$py" "$demo"
    local ver; ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    local minor=${ver#3.}
    grep -q "^mode=1 version=$ver " "$out" || { echo "FAIL [$py] mode line: $(head -1 "$out")"; fail=1; return; }
    if [ "$minor" -ge 11 ]; then
        q=1 # qualified names
    else
        q=0
    fi
    expect "$out" leaf "leaf@leaf;$( [ $q = 1 ] && echo Frontier.push || echo push)@push;main@main_push;<module>@module"
    expect "$out" "$( [ $q = 1 ] && echo 'Frontier.nested.<locals>.inner' || echo inner)" \
        "$( [ $q = 1 ] && echo 'Frontier.nested.<locals>.inner' || echo inner)@inner;$( [ $q = 1 ] && echo Frontier.nested || echo nested)@nested;main@main_nested;<module>@module"
    expect "$out" gen "gen@gen;main@main_gen;<module>@module"
    expect "$out" task "task@task;main@main_task;<module>@module"
    # the thread's stack starts at threading's bootstrap, below in_thread()
    grep -F "leaf|$demo|$(line_of leaf);in_thread|$demo|$(line_of thread);" "$out" >/dev/null ||
        { echo "FAIL [$py] thread stack"; grep leaf "$out"; fail=1; }
    echo "ok [$py] $ver"
}

# Debian's interpreter is required; the others are checked when present.
run_one /usr/bin/python3
for py in "$HOME"/.pyenv/versions/3.{8,9,10,11,12,13}.*/bin/python3.*[0-9]; do
    [ -x "$py" ] && run_one "$py"
done

# An interpreter without a layout table: found, reported, nothing read.
for py in "$HOME"/.pyenv/versions/3.7.*/bin/python3.7; do
    [ -x "$py" ] || continue
    out=$tmp/old.out
    LD_PRELOAD=$PYPROBE PYPROBE_OUT=$out "$py" "$demo"
    grep -q "^mode=2 version=3.7 n=0 " "$out" && echo "ok [$py] unknown layout, native only" ||
        { echo "FAIL [$py] unknown version: $(head -1 "$out")"; fail=1; }
done

# Capture on every malloc (PYTHONMALLOC=malloc: every object) in threads,
# generators, asyncio and at start-up/shut-down: no fault, frames found.
out=$tmp/stress.out
LD_PRELOAD=$PYPROBE PYPROBE_OUT=$out PYPROBE_STRESS=1 PYTHONMALLOC=malloc /usr/bin/python3 - <<'PY'
import asyncio, json, threading
def work(n):
    for i in range(n):
        json.loads(json.dumps({"k%d" % j: [j] * 3 for j in range(20)}))
async def coro(i):
    await asyncio.sleep(0)
    return [x for x in range(i)]
async def amain():
    await asyncio.gather(*(coro(i) for i in range(100)))
ts = [threading.Thread(target=work, args=(60,)) for _ in range(4)]
[t.start() for t in ts]
asyncio.run(amain())
[t.join() for t in ts]
PY
read -r captures frames < <(sed -n 's/^stress captures=\([0-9]*\) frames=\([0-9]*\)$/\1 \2/p' "$out")
if [ "${captures:-0}" -gt 20000 ] && [ "${frames:-0}" -gt "$captures" ]; then
    echo "ok stress: $captures captures, $frames frames"
else
    echo "FAIL stress: $(cat "$out")"; fail=1
fi
exit $fail
