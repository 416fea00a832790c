#!/usr/bin/env bash
# `leakscope show` on a live python3 that keeps a file every 0.1 s: a
# snapshot states what is held and gives no verdict (a young process's files
# are not a leak); `--watch S` samples, then names fd-growth of its files.
# Needs: LEAKSCOPE.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
lks run --quiet -- /usr/bin/python3 "$HERE/growing.py" fd-leak 90 "$TMP/pid" &
CLEANUP+=("kill $!")
for _ in $(seq 200); do [ -s "$TMP/pid" ] && break; sleep 0.1; done
PID=$(cat "$TMP/pid")
CLEANUP+=("kill $PID")

lks show "$PID" >"$TMP/snap.txt"
check "snapshot: exit 0" 0 "$?"
check_true "snapshot: no verdict from a snapshot" grep -q "^verdicts: none from a snapshot" "$TMP/snap.txt"
check "snapshot: no growth verdict line" 0 "$(grep -cE '^(fd-growth|pool-growth|retained-heap|heap-growth|emfile):' "$TMP/snap.txt")"
lks show --json --watch 25 "$PID" >"$TMP/watch.json" 2>/dev/null
check "watch: exit 0" 0 "$?"
check "watch: fd-growth of files in the python process" "fd-growth file $PID" \
  "$(jq -r '[.verdicts[] | select(.kind == "fd-growth")][0] | "\(.kind) \(.subsystem) \(.pid)"' "$TMP/watch.json")"
lks show --watch x "$PID" 2>/dev/null
check "bad --watch: exit 2" 2 "$?"
finish
