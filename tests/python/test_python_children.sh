#!/bin/bash
# test_python_children.sh - Debian's python3 making children every way it
# can (multiprocessing fork, spawn and forkserver, subprocess.run of
# sys.executable) under `leakscope run` with both shims. Each process keeps
# a known number of files at a known line; the summary must count them in
# the right process, name that line, agree with what each process's
# /proc/self/fd said just before it ended, and leave the parent's table
# undisturbed by its vfork children.
set -u
: "${LEAKSCOPE:?}" "${PYDIR:?}"
TMP=$(mktemp -d /tmp/lks-pych-XXXXXX)
chmod 700 "$TMP"
trap '[ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"' EXIT
modes="fork spawn forkserver subprocess"
mkdir -m 700 "$TMP/out"
# Only stdio is passed on: the test runner's descriptors are not the app's.
(
    for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ] && eval "exec $fd>&-" 2>/dev/null
    done
    cd "$PYDIR" && LEAKSCOPE_DIR=$TMP/seg exec "$LEAKSCOPE" run --quiet --role app \
        --summary "$TMP/summary.json" -- /usr/bin/python3 children_app.py "$TMP/out" $modes
) </dev/null >"$TMP/run.log" 2>&1
status=$?
fail=0
[ "$status" -eq 0 ] && echo "ok   - the app and its children exited 0" ||
    { echo "FAIL - leakscope run exited $status"; cat "$TMP/run.log"; fail=1; }
/usr/bin/python3 "$PYDIR/check_children.py" "$TMP/summary.json" "$TMP/out" $modes || fail=1
exit $fail
