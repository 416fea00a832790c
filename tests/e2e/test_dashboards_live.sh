#!/usr/bin/env bash
# The dashboards against the real thing: `leakscope stack` starts Debian's
# Prometheus and `leakscope serve` on free loopback ports, over a traced
# Debian python3 that leaks spool files and heap, holds 10 idle TCP sockets
# and hit EMFILE once (tests/dashboards/target.py), a process that already
# exited, and the reference crawler leaking Redis connections (its own
# /metrics scraped too). Every dashboard query must return data, and the
# series must show what the programs did. Needs: LEAKSCOPE, CRAWLER, WEB.
. "$(dirname "$0")/lib.sh"
DT=$(cd "$(dirname "$0")/../dashboards" && pwd)
DASH=$(cd "$DT/../../dashboards" && pwd)

# q EXPR: the first value of an instant query, or "none".
q() {
  curl -s --max-time 10 --data-urlencode "query=$1" "$PROM/api/v1/query" | jq -r '.data.result[0].value[1] // "none"'
}

# wait_for SECONDS CMD...: polls CMD every 0.2 s.
wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.2
  done
}

printf 'spool path */spool/*\n' >"$TMP/rules"
lks run --quiet --keep --role oneshot -- /usr/bin/python3 -c pass
lks run --quiet --role worker --rules "$TMP/rules" -- /usr/bin/python3 "$DT/target.py" "$TMP" 300 >"$TMP/run.out" 2>&1 &
RUN=$!
CLEANUP+=('[ -s "$TMP/ready" ] && kill $(cat "$TMP/ready"); wait $RUN')
check_true "traced program ready" wait_for 30 test -s "$TMP/ready"

# The crawler with seed 001's leak: abandoned Redis connections.
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
CLEANUP+=("kill $!")
"$WEB" --port 0 --port-file "$TMP/web.port" --hosts 40 --pages 400 --crawl-delay 0.2 2>"$TMP/web.log" &
CLEANUP+=("kill $!; sleep 0.5; kill -KILL $! 2>/dev/null")
check_true "redis and the web up" wait_for 30 bash -c "redis-cli -p $RPORT ping >/dev/null 2>&1 && test -s '$TMP/web.port'"
echo "http://h0.example/" >"$TMP/seeds"
cp=$(free_port)
lks run --fd --quiet -- "$CRAWLER" --seeds "$TMP/seeds" --data-dir "$TMP/data" --redis "127.0.0.1:$RPORT" \
  --connect-to "127.0.0.1:$(cat "$TMP/web.port")" --delay 0.05 --duration 300 --workers 16 \
  --log "$TMP/crawl.log" --metrics-port "$cp" --inject redis-pool-growth >"$TMP/crawl.out" 2>&1 &
CRAWL=$!
CLEANUP+=('kill -INT $(ps --ppid $CRAWL -o pid=); wait $CRAWL')

sp=$(free_port)
pp=$(free_port)
PROM=http://127.0.0.1:$pp
"$LEAKSCOPE" stack --dir "$LEAKSCOPE_DIR" --listen 127.0.0.1:$sp --prometheus-listen 127.0.0.1:$pp \
  --crawler 127.0.0.1:$cp --scrape-interval 2s --idle-after 1 >"$TMP/stack.out" 2>"$TMP/stack.err" &
STACK=$!
CLEANUP+=('kill -INT $STACK; wait $STACK')
check_true "stack running" wait_for 150 grep -q "running" "$TMP/stack.out"

# Enough samples for every rate and deriv over the 10 s rate interval (2 s
# scrapes; a few may time out on a loaded machine).
enough() {
  local a b
  a=$(q 'count_over_time(leakscope_fds_open{role="worker", subsystem="spool"}[30s])')
  b=$(q 'count_over_time(crawler_fds_open[30s])')
  [ "$a" != none ] && [ "$b" != none ] && [ "$a" -ge 8 ] && [ "$b" -ge 8 ]
}
check_true "Prometheus has 8 samples of both jobs in 30 s" wait_for 150 enough

/usr/bin/python3 "$DT/exprs.py" "$DASH" json 10s >"$TMP/queries.json"
check_true "every dashboard query returns data" /usr/bin/python3 "$DT/live_check.py" "$PROM" "$TMP/queries.json"

# What the program did, as the dashboards' series show it.
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
# The crawler's own count of abandoned connections, and leakscope's view of
# the same process: redis descriptors held by the fetcher.
abandoned=$(q 'sum(crawler_redis_pool_created_total - crawler_redis_pool_closed_total - crawler_redis_pool_in_use - crawler_redis_pool_idle)')
check_true "crawler: abandoned redis connections climb ($abandoned)" test "${abandoned%.*}" -ge 10
held=$(q 'max(leakscope_fds_open{process="leakscope-crawl", subsystem="redis"})')
check_true "leakscope: the crawler holds them as redis descriptors ($held)" test "${held%.*}" -ge 10
check "the crawler's target is up" up \
  "$(curl -s "$PROM/api/v1/targets" | jq -r '.data.activeTargets[] | select(.labels.job=="crawler") | .health')"
check "the exporter's target is up" up \
  "$(curl -s "$PROM/api/v1/targets" | jq -r '.data.activeTargets[] | select(.labels.job=="leakscope") | .health')"
finish
