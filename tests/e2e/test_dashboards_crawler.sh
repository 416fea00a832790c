#!/usr/bin/env bash
# The crawler dashboard against the real thing: the reference crawler runs
# with seed 001's leak (abandoned Redis connections) under leakscope, against
# Debian's redis-server and the synthetic web; `leakscope stack --crawler`
# scrapes its /metrics and `leakscope serve`. Every query of
# dashboards/grafana/crawler.json must return data, and the crawler's own
# count of abandoned connections must show up in leakscope as redis
# descriptors of the same process. Needs: LEAKSCOPE, CRAWLER, WEB.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../dashboards/live.sh"

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
CLEANUP+=("kill $!")
"$WEB" --port 0 --port-file "$TMP/web.port" --hosts 40 --pages 400 --crawl-delay 0.2 2>"$TMP/web.log" &
CLEANUP+=("kill $!")
check_true "redis and the web up" wait_for 60 bash -c "redis-cli -p $RPORT ping >/dev/null 2>&1 && test -s '$TMP/web.port'"
echo "http://h0.example/" >"$TMP/seeds"
cp=$(free_port)
lks run --fd --quiet -- "$CRAWLER" --seeds "$TMP/seeds" --data-dir "$TMP/data" --redis "127.0.0.1:$RPORT" \
  --connect-to "127.0.0.1:$(cat "$TMP/web.port")" --delay 0.05 --duration 300 --workers 16 \
  --log "$TMP/crawl.log" --metrics-port "$cp" --inject redis-pool-growth >"$TMP/crawl.out" 2>&1 &
CRAWL=$!
# Stopped before Redis goes away (else it retries Redis before giving up).
CLEANUP=('kill -INT $(descendant $CRAWL "$CRAWLER"); wait $CRAWL' "${CLEANUP[@]}")

start_stack --crawler 127.0.0.1:$cp
both_scraped() { samples crawler_fds_open 8 && samples 'leakscope_fds_open{subsystem="redis"}' 8; }
check_true "Prometheus has 8 samples of both jobs in 30 s" wait_for 150 both_scraped
every_query_answers crawler.json

abandoned=$(q 'sum(crawler_redis_pool_created_total - crawler_redis_pool_closed_total - crawler_redis_pool_in_use - crawler_redis_pool_idle)')
check_true "crawler: abandoned redis connections climb ($abandoned)" test "${abandoned%.*}" -ge 10
held=$(q 'max(leakscope_fds_open{process="leakscope-crawl", subsystem="redis"})')
check_true "leakscope: the crawler holds them as redis descriptors ($held)" test "${held%.*}" -ge 10
check "the crawler's target is up" up \
  "$(curl -s "$PROM/api/v1/targets" | jq -r '.data.activeTargets[] | select(.labels.job=="crawler") | .health')"
finish
