#!/usr/bin/env bash
# Verdicts and the HTML report on recordings whose truth is known
# (make_recording.py writes them in the schema of docs/RECORDING.md): the
# leaks it planted are named with their process, kind, subsystem and site,
# the shapes that are not leaks (churn, a pool filling to its size, a warm-up,
# a GC sawtooth, a burst to a plateau) raise nothing, bad input gets a clear
# error, and the page renders in headless Chromium with its charts drawn and
# no console errors. Needs: LEAKSCOPE.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/render_html.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
jqt() { jq -e "$@" >/dev/null; }

/usr/bin/python3 "$HERE/make_recording.py" "$TMP/mixed.db" mixed
/usr/bin/python3 "$HERE/make_recording.py" "$TMP/clean.db" clean

lks report "$TMP/mixed.db" --json "$TMP/mixed.json" --html "$TMP/mixed.html" >"$TMP/mixed.txt"
check "report exits 0" 0 "$?"
J="$TMP/mixed.json"
check "three verdicts, no more" 3 "$(jq '.verdicts | length' "$J")"
v() { jq -r "[.verdicts[] | select(.pid == $1 and .kind == \"$2\")][0] | $3" "$J"; }
check "pool growth: fetcher's redis" redis "$(v 4121 pool-growth .subsystem)"
check_true "pool growth: rate close to the planted +10/min ($(v 4121 pool-growth .rate_per_min))" \
  jqt '.verdicts[] | select(.kind == "pool-growth") | .rate_per_min > 9 and .rate_per_min < 11' "$J"
check_true "pool growth: most sockets idle" \
  jqt '.verdicts[] | select(.kind == "pool-growth") | .idle_fraction > 0.8' "$J"
check "pool growth: site redis_pool_acquire" "redis_pool_acquire (crawler/redis_pool.c:88) [leakscope-crawler]" \
  "$(v 4121 pool-growth '.sites[0].frames[0]')"
check "retained heap: fetcher's page buffers" "parse fetch_page_buffer_grow" \
  "$(v 4121 retained-heap '"\(.subsystem) \(.sites[0].frames[0] | split(" ")[0])"')"
check_true "retained heap: rate close to the planted 3.6 MB/min" \
  jqt '.verdicts[] | select(.kind == "retained-heap") | .rate_per_min > 3.4e6 and .rate_per_min < 3.8e6' "$J"
check "emfile: http failed, http held" "http http 96 0" \
  "$(v 4123 emfile '"\(.subsystem) \(.holder) \(.limit) \(.headroom)"')"
check "the parser (pool filling to 8, heap warm-up) is not blamed" 0 \
  "$(jq '[.verdicts[] | select(.pid == 4122)] | length' "$J")"
check "fetcher's http churn and GC sawtooth are not blamed" 0 \
  "$(jq '[.verdicts[] | select(.pid == 4121 and .subsystem == "http")] | length' "$J")"
check_true "text line names process, rate, confidence, idle share and site" \
  grep -qE '^pool-growth: leakscope-crawl \(pid 4121\): redis sockets \+10\.0/min over 3 min \(confidence 1\.00\), [0-9]+ open, 9[0-9]% idle > 10 s, 9[0-9]% opened at redis_pool_acquire \(crawler/redis_pool\.c:88\)$' "$TMP/mixed.txt"

check "clean recording: no verdict" "no leak: nothing grows steadily, no open failed with EMFILE" \
  "$(lks report "$TMP/clean.db" --json "$TMP/clean.json")"
check "clean recording: empty verdicts in JSON" 0 "$(jq '.verdicts | length' "$TMP/clean.json")"

# Bad input: a clear message and a non-zero exit, never a crash.
lks report "$TMP/missing.db" 2>"$TMP/err"
check "missing file: exit 1" 1 "$?"
check_true "missing file: says so" grep -q "cannot open" "$TMP/err"
head -c 4096 /dev/urandom >"$TMP/junk.db"
lks report "$TMP/junk.db" 2>"$TMP/err"
check "junk file: exit 1" 1 "$?"
check_true "junk file: not a recording" grep -qi "not a leakscope recording\|not a database" "$TMP/err"
cp "$TMP/mixed.db" "$TMP/v9.db"
sqlite3 "$TMP/v9.db" "UPDATE meta SET value = '9' WHERE key = 'schema_version'"
lks report "$TMP/v9.db" 2>"$TMP/err"
check "unknown schema version: exit 1" 1 "$?"
sqlite3 "$TMP/v9.db" "UPDATE meta SET value = '1' WHERE key = 'schema_version'; UPDATE tick SET t = 0 WHERE id = 50"
lks report "$TMP/v9.db" 2>"$TMP/err"
check "ticks out of order: exit 1" 1 "$?"
lks report "$TMP/mixed.db" --html /nonexistent/dir/x.html >/dev/null 2>"$TMP/err"
check "unwritable --html: exit 1" 1 "$?"
lks report 2>/dev/null
check "no recording given: exit 2" 2 "$?"

# The page: self-contained, and it renders.
check "no external references in the page" 0 "$(grep -cE '(src|href)="(https?:)?//' "$TMP/mixed.html")"
check "report file is private" 600 "$(stat -c %a "$TMP/mixed.html")"
render_html "$TMP/mixed.html" "$TMP/mixed.png"
check "chromium renders the page" 0 "$?"
size=$(stat -c %s "$TMP/mixed.png" 2>/dev/null || echo 0)
check_true "screenshot is a real picture ($size bytes)" test "$size" -gt 50000
check "no console errors" "" "$(cat "$TMP/mixed.png.console")"
paths=$(grep -o '<path class="series"[^>]* d="M[0-9]' "$TMP/mixed.png.dom" | wc -l)
check_true "charts are drawn ($paths series with points)" test "$paths" -ge 10
check "a card per verdict" 3 "$(grep -o 'class="verdict ' "$TMP/mixed.png.dom" | wc -l)"
check "screenshot is a PNG of the window's size" "1100 2400" \
  "$(/usr/bin/python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print(*struct.unpack(">II", d[16:24]) if d[:8] == b"\x89PNG\r\n\x1a\n" else "not-png")' "$TMP/mixed.png")"
finish
