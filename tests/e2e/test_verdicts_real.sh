#!/usr/bin/env bash
# Verdicts from real recordings of programs I did not write the interpreter
# of: Debian's python3 under `leakscope run --record`, doing what
# growing.py's modes say. A file leak is fd-growth of "file" at the call
# that opens them; kept buffers are heap growth; a clean loop and a pool that
# fills to 20 and stays there raise nothing, though both open and close
# hundreds of files. The report renders. Needs: LEAKSCOPE.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/render_html.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

rec() {
  lks run --quiet --record "$TMP/$1.db" --summary "$TMP/$1.summary.json" -- \
    /usr/bin/python3 "$HERE/growing.py" "$1" 20 "$TMP/$1.pid" >/dev/null 2>"$TMP/$1.err"
  echo $? >"$TMP/$1.rc"
}
# One at a time: the recorder's first look at a python process (symbolizing
# its sites) is slow on a loaded machine (seconds, once), and its samples
# must cover the run.
for m in fd-leak heap-leak clean plateau; do rec "$m"; done

for m in fd-leak heap-leak clean plateau; do
  check "$m: run exits 0" 0 "$(cat "$TMP/$m.rc")"
  lks report "$TMP/$m.db" --json "$TMP/$m.json" --html "$TMP/$m.html" >"$TMP/$m.txt"
  check "$m: report exits 0" 0 "$?"
  check "$m: run's verdicts are the report's" "$(jq -c '[.verdicts[] | [.kind, .subsystem]]' "$TMP/$m.json")" \
    "$(jq -c '[.verdicts[] | [.kind, .subsystem]]' "$TMP/$m.summary.json")"
done
PID=$(cat "$TMP/fd-leak.pid")
check "fd-leak: fd-growth of files in the python process" "fd-growth file $PID" \
  "$(jq -r '[.verdicts[] | select(.kind == "fd-growth")][0] | "\(.kind) \(.subsystem) \(.pid)"' "$TMP/fd-leak.json")"
check_true "fd-leak: about 10 files a second kept (python says $(jq '.verdicts[0].rate_per_min' "$TMP/fd-leak.json")/min)" \
  jq -e '[.verdicts[] | select(.kind == "fd-growth")][0].rate_per_min | . > 300 and . < 700' "$TMP/fd-leak.json"
check_true "fd-leak: the site is the Python line that opens the kept files (growing.py:26)" \
  jq -e '[.verdicts[] | select(.kind == "fd-growth")][0].sites[0].frames | any(contains("(growing.py:26)"))' "$TMP/fd-leak.json"
check_true "fd-leak: the open count matches the kernel's at the end (ground truth: growing.py kept one per round)" \
  jq -e '[.verdicts[] | select(.kind == "fd-growth")][0].open >= 100' "$TMP/fd-leak.json"
HEAP_RATE=$(jq "[.verdicts[] | select((.kind == \"retained-heap\" or .kind == \"heap-growth\") and .pid == $(cat "$TMP/heap-leak.pid"))][0].rate_per_min" "$TMP/heap-leak.json")
check_true "heap-leak: heap growth of about 640 KiB/s = 39e6 B/min in the python process (got $HEAP_RATE)" \
  jq -en "$HEAP_RATE | . > 20e6 and . < 45e6"
if ! jq -en "$HEAP_RATE | . > 20e6 and . < 45e6" >/dev/null; then
  echo "# heap-leak (pid $(cat "$TMP/heap-leak.pid")): report said"
  sed 's/^/#   /' "$TMP/heap-leak.txt"
  echo "# run's stderr"
  sed 's/^/#   /' "$TMP/heap-leak.err"
  KEPT=$(mktemp /tmp/lks-verdicts-real-heap-leak-XXXXXX.db)
  cp "$TMP/heap-leak.db" "$KEPT" && echo "# the recording is kept for study: $KEPT"
  echo "# the report's JSON processes and verdicts:"
  jq -c '{processes, verdicts}' "$TMP/heap-leak.json" | sed 's/^/#   /'
  echo "# the recording's processes (id, pid, first and last tick, exit time)"
  sqlite3 -separator ' ' "$TMP/heap-leak.db" \
    "select id, pid, first_tick, last_tick, exit_time from process" | sed 's/^/#   /'
  echo "# its samples of python's \"other\" (tick, time, scan ms, process, rss, live bytes)"
  sqlite3 -separator ' ' "$TMP/heap-leak.db" \
    "select s.tick, t.t, t.scan_ms, s.process, p.rss_bytes, s.heap_live_bytes from subsys_sample s
     join tick t on t.id = s.tick
     left join proc_sample p on p.tick = s.tick and p.process = s.process
     where s.subsystem = 'other'" | sed 's/^/#   /'
fi
check_true "heap-leak: the site is the Python line that keeps the buffers (growing.py:28)" \
  jq -e "[.verdicts[] | select(.pid == $(cat "$TMP/heap-leak.pid"))][0].sites[0].frames | any(contains(\"(growing.py:28)\"))" "$TMP/heap-leak.json"
check "heap-leak: no descriptor verdict" 0 \
  "$(jq '[.verdicts[] | select(.kind == "fd-growth" or .kind == "pool-growth")] | length' "$TMP/heap-leak.json")"
check "clean: no verdict" 0 "$(jq '.verdicts | length' "$TMP/clean.json")"
check "plateau (20 kept files, then churn): no verdict" 0 "$(jq '.verdicts | length' "$TMP/plateau.json")"
check_true "clean: it did churn (opened/closed hundreds of files)" \
  test "$(sqlite3 "$TMP/clean.db" "SELECT max(fds_opened) FROM subsys_sample WHERE subsystem = 'file'")" -gt 100

render_html "$TMP/fd-leak.html" "$TMP/fd-leak.png"
check "the report renders" 0 "$?"
check "no console errors" "" "$(cat "$TMP/fd-leak.png.console")"
finish
