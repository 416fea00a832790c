#!/usr/bin/env bash
# `leakscope serve` end to end: a live exposition passes promtool, a real
# Prometheus (Debian's, on a free loopback port) scrapes it while a traced
# Python program leaks .log files and PromQL shows the growth in the "log"
# subsystem; exited processes linger then go (segment removed unless --keep);
# bad input (port in use, bad address) is refused with a clear error.
# Needs: LEAKSCOPE, FDTRACK, prometheus, promtool, curl, jq, /usr/bin/python3.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/series_lib.sh"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
W="$TMP/work"
mkdir -p "$W"

# Traced by the preload shim directly (not `run --keep`, whose segments are
# marked kept and never removed).
mkdir -m 700 "$LEAKSCOPE_DIR"
isolated env LD_PRELOAD="$FDTRACK" "$PY" "$HERE/leaker.py" "$W" 30 &
RUN_PID=$!
CLEANUP+=("touch $W/stop; wait $RUN_PID")
wait_for 30 test -s "$W/pid" || not_ok "leaker started"
pid=$(cat "$W/pid")

start_serve --dir "$LEAKSCOPE_DIR" || { not_ok "serve starts"; finish; exit 1; }
wait_for 10 test -n "$(metric leakscope_process_up "pid=\"$pid\"")"
check "traced python is exported and up" 1 "$(metric leakscope_process_up "pid=\"$pid\"")"

# promtool on a live exposition, and the OpenMetrics variant.
scrape >"$TMP/m.txt"
if promtool check metrics <"$TMP/m.txt" >"$TMP/promtool.out" 2>&1; then
  ok "promtool check metrics finds nothing"
else
  not_ok "promtool check metrics: $(head -5 "$TMP/promtool.out")"
fi
check "promtool printed no finding" 0 "$(wc -l <"$TMP/promtool.out")"
check "process_info names exe and producer" 1 \
  "$(grep -c "^leakscope_process_info{pid=\"$pid\",process=\"python3\",role=\"\",ppid=\"[0-9]*\",exe=\"/usr/bin/python3[.0-9]*\",producer=\"preload\"} 1$" "$TMP/m.txt")"
check "fds_limit is the soft RLIMIT_NOFILE" "$(ulimit -Sn)" "$(metric leakscope_fds_limit "pid=\"$pid\"")"
check "exporter health: nothing skipped" "0 0" \
  "$(grep '^leakscope_exporter_segments_skipped' "$TMP/m.txt" | awk '{printf "%s%s", s, $2; s=" "}')"
OM='application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'
scrape "$OM" >"$TMP/om.txt"
check "OpenMetrics ends with # EOF" "# EOF" "$(tail -1 "$TMP/om.txt")"
check "OpenMetrics counter family named without _total" 1 \
  "$(grep -c '^# TYPE leakscope_fds_opened counter$' "$TMP/om.txt")"
ctype=$(curl -s -o /dev/null -w '%{content_type}' -H "Accept: $OM" "http://127.0.0.1:$SERVE_PORT/metrics")
check "OpenMetrics content type" "application/openmetrics-text; version=1.0.0; charset=utf-8" "$ctype"

# A real Prometheus scrapes serve every second.
PP=$(free_port)
cat >"$TMP/prom.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: leakscope
    static_configs: [{targets: ['127.0.0.1:$SERVE_PORT']}]
YML
prometheus --config.file="$TMP/prom.yml" --storage.tsdb.path="$TMP/prom" \
  --web.listen-address="127.0.0.1:$PP" --log.level=warn >"$TMP/prom.log" 2>&1 &
PROM_PID=$!
CLEANUP+=("kill $PROM_PID; wait $PROM_PID")
promql() { curl -sf --data-urlencode "query=$1" "http://127.0.0.1:$PP/api/v1/query"; }
up() { [ "$(promql 'up{job="leakscope"}' | jq -r '.data.result[0].value[1]' 2>/dev/null)" = 1 ]; }
if wait_for 60 up; then ok "Prometheus scrapes serve (up == 1)"; else not_ok "Prometheus scrapes serve: $(tail -3 "$TMP/prom.log")"; fi

# The baseline (base.log: 1 open) must be in Prometheus before the leak.
base() { [ "$(promql "leakscope_fds_open{pid=\"$pid\",subsystem=\"log\"}" | jq -r '.data.result[0].value[1]')" = 1 ]; }
check_true "Prometheus has the baseline (1 log open)" wait_for 60 base
touch "$W/go"
wait_for 60 test -e "$W/leaked" || not_ok "leaker finished leaking"
G="leakscope_fds_open{pid=\"$pid\"}"
GROWTH="max_over_time($G[5m]) - min_over_time($G[5m])"
grown() { [ "$(promql "$GROWTH" | jq -r '[.data.result[] | select(.metric.subsystem=="log") | .value[1]][0]')" = 30 ]; }
if wait_for 30 grown; then ok "PromQL: log descriptors grew by the 30 leaked"; else
  not_ok "PromQL growth: $(promql "$GROWTH") $(promql "leakscope_fds_open{pid=\"$pid\",subsystem=\"log\"}[5m]")"; fi
check "PromQL: the growing subsystem is log" log \
  "$(promql "topk(1, $GROWTH)" | jq -r '.data.result[0].metric.subsystem')"
check "PromQL: the leaking site is leaker.py's open() line, holding the 30" 1 \
  "$(promql "leakscope_site_fds_open{pid=\"$pid\",subsystem=\"log\"}" | jq '[.data.result[] | select(.value[1]=="30" and (.metric.site | test("leaker.py:16\\)")))] | length')"
check "PromQL: the exporter's own health is scraped" 1 \
  "$(promql 'count(leakscope_exporter_scrape_duration_seconds)' | jq -r '.data.result[0].value[1]')"

# Port in use and a bad address: clear error, non-zero exit.
"$LEAKSCOPE" serve --dir "$LEAKSCOPE_DIR" --listen "127.0.0.1:$PP" 2>"$TMP/err"
rc=$?
check "port in use: exit 2" 2 "$rc"
check_true "port in use: says so" grep -q "cannot listen on 127.0.0.1:$PP: Address already in use" "$TMP/err"
"$LEAKSCOPE" serve --listen nonsense 2>"$TMP/err"
check "bad --listen: exit 2" 2 "$?"
check_true "bad --listen: says what it wants" grep -q "ADDR:PORT" "$TMP/err"
"$LEAKSCOPE" serve --top-sites 0 2>"$TMP/err"
check "bad --top-sites: exit 2" 2 "$?"

# Exit: final values stay exported (default linger 300 s), process_up 0.
touch "$W/stop"
wait "$RUN_PID"
gone() { [ "$(metric leakscope_process_up "pid=\"$pid\"")" = 0 ]; }
check_true "exited process still exported with process_up 0" wait_for 10 gone
# Python closes its files at shutdown: the final values say so.
check "its final log count (closed at interpreter exit)" "0 31" \
  "$(metric leakscope_fds_open "pid=\"$pid\"" 'subsystem="log"') $(metric leakscope_fds_closed_total "pid=\"$pid\"" 'subsystem="log"')"
check "no resident memory for an exited process" "" \
  "$(metric leakscope_process_resident_memory_bytes "pid=\"$pid\"")"

# --linger 0 --keep: no longer exported, segment kept; without --keep removed.
SEG="$LEAKSCOPE_DIR/$pid.seg"
start_serve --dir "$LEAKSCOPE_DIR" --linger 0 --keep
check "linger over: not exported" "" "$(metric leakscope_process_up "pid=\"$pid\"")"
check_true "--keep: segment kept" test -e "$SEG"
start_serve --dir "$LEAKSCOPE_DIR" --linger 0
scrape >/dev/null
check_true "without --keep: segment removed" test ! -e "$SEG"
check "removal counted" 1 "$(metric leakscope_exporter_segments_removed_total)"
finish
