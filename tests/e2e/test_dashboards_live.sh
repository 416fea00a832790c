#!/usr/bin/env bash
# The main dashboard against the real thing: `leakscope stack` starts Debian's
# Prometheus and `leakscope serve` on free loopback ports, over a traced
# Debian python3 that leaks spool files and heap, holds 10 idle TCP sockets
# and hit EMFILE once (tests/dashboards/target.py), and a process that already
# exited. Every query of dashboards/grafana/leakscope.json must return data,
# and the series must show what the program did. Needs: LEAKSCOPE.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../dashboards/live.sh"

printf 'spool path */spool/*\n' >"$TMP/rules"
lks run --quiet --keep --role oneshot -- /usr/bin/python3 -c pass
lks run --quiet --role worker --rules "$TMP/rules" -- /usr/bin/python3 "$DT/target.py" "$TMP" 300 >"$TMP/run.out" 2>&1 &
RUN=$!
CLEANUP+=('[ -s "$TMP/ready" ] && kill $(cat "$TMP/ready"); wait $RUN')
check_true "traced program ready" wait_for 60 test -s "$TMP/ready"

start_stack
check_true "Prometheus has 8 samples in 30 s" \
  wait_for 150 samples 'leakscope_fds_open{role="worker", subsystem="spool"}' 8
every_query_answers leakscope.json

# What the program did, as the dashboard's series show it.
check "10 idle established sockets" 10 "$(q 'sum(leakscope_sockets_idle{role="worker"})')"
check_true "EMFILE counted" test "$(q 'sum(leakscope_fd_open_failures_total{role="worker", errno="EMFILE"})')" -ge 1
check "spool is the growing subsystem" spool \
  "$(curl -s --data-urlencode 'query=topk(1, sum by (subsystem) (deriv(leakscope_fds_open{role="worker"}[10s])))' \
     "$PROM/api/v1/query" | jq -r '.data.result[0].metric.subsystem')"
check_true "heap grows" test "$(q 'sum(deriv(leakscope_heap_live_bytes{role="worker"}[10s])) > 0')" != none
check "limit is the program's soft RLIMIT_NOFILE" "$(ulimit -n)" "$(q 'max(leakscope_fds_limit{role="worker"})')"
check "exited process marked" 0 "$(q 'leakscope_process_up{role="oneshot"}')"
check "the 6 alert rules are loaded" 6 \
  "$(curl -s "$PROM/api/v1/rules?type=alert" | jq '[.data.groups[].rules[]] | length')"
check "the exporter's target is up" up \
  "$(curl -s "$PROM/api/v1/targets" | jq -r '.data.activeTargets[] | select(.labels.job=="leakscope") | .health')"
finish
