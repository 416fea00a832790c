#!/usr/bin/env bash
# The toolkit against known truth: the reference crawler runs under
# `leakscope run` with each descriptor leak switched on, and the summary must
# name the injected leak — its subsystem and its call site — in the process
# that has it; a clean crawl must leave no descriptor of a crawl subsystem
# open. Real redis-server and the synthetic web, on free loopback ports.
# Needs: LEAKSCOPE, CRAWLER, WEB.
. "$(dirname "$0")/lib.sh"

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
  >"$TMP/redis.log" 2>&1 &
CLEANUP+=("kill $!")
# A web of 40 deep hosts, and one of 300 shallow hosts (each new host is a
# new kept-alive connection: what exhausts descriptors without a cap).
"$WEB" --port 0 --port-file "$TMP/web.port" --hosts 40 --pages 400 --crawl-delay 0.2 \
  2>"$TMP/web.log" &
CLEANUP+=("kill $!")
"$WEB" --port 0 --port-file "$TMP/wide.port" --hosts 300 --pages 20 --crawl-delay 0.2 \
  2>"$TMP/wide.log" &
CLEANUP+=("kill $!")
for _ in $(seq 100); do
  redis-cli -p "$RPORT" ping >/dev/null 2>&1 && [ -s "$TMP/web.port" ] && [ -s "$TMP/wide.port" ] && break
  sleep 0.05
done
WPORT=$(cat "$TMP/web.port")
echo "http://h0.example/" >"$TMP/seeds"

# crawl MODE [NOFILE WORKERS]: a 6-second crawl under leakscope, optionally
# with a low descriptor limit.
crawl() {
  local mode=$1 nofile=${2:-4096} workers=${3:-64}
  redis-cli -p "$RPORT" flushall >/dev/null
  rm -rf "$TMP/data"
  S="$TMP/$mode.json"
  (ulimit -n "$nofile" && lks run --quiet --summary "$S" -- "$CRAWLER" --seeds "$TMP/seeds" \
    --data-dir "$TMP/data" --redis "127.0.0.1:$RPORT" --connect-to "127.0.0.1:$WPORT" \
    --delay 0.05 --duration 6 --workers "$workers" --log "$TMP/crawl-$mode.log" --stats-json "$TMP/$mode.stats" \
    --inject "$mode")
  check "$mode: crawler exits 0 under leakscope" 0 "$?"
  FETCHER=".processes[] | select(.pid == $(jq '.processes | min_by(.pid) | .pid' "$S"))"
}

# open_in SUBSYSTEM: descriptors of the fetcher still open at exit.
open_in() { jq "[$FETCHER | .fd.by_subsystem.$1.open // 0] | add" "$S"; }

# site_open SUBSYSTEM FUNCTION: open descriptors of that subsystem whose
# creating stack names FUNCTION.
site_open() {
  jq "[$FETCHER | .fd.sites[] | select(.subsystem == \"$1\" and any(.frames[]; contains(\"$2\"))) | .open] | add // 0" "$S"
}

crawl none
for sub in redis http https frontier; do
  check "clean crawl: no $sub descriptor left open" 0 "$(open_in "$sub")"
done
check "clean crawl: the verdict raises no leak" 0 "$(jq '.leaks | length' "$S")"
live=$(jq "$FETCHER | .heap.by_subsystem | [.[].live_bytes] | add" "$S")
check_true "clean crawl: under 1 MiB of heap live at exit ($live B)" test "$live" -lt 1048576
check "clean crawl: every open site is startup plumbing (log, stdio)" 0 \
  "$(jq "[$FETCHER | .fd.sites[] | select(.open > 0 and .subsystem != \"log\")] | length" "$S")"

crawl redis-pool-growth
n=$(open_in redis)
created=$(jq .redis_pool_created "$TMP/redis-pool-growth.stats")
check_true "pool growth: redis descriptors held ($n) track the pool's created count ($created)" \
  test "$n" -ge 10 -a "$n" -ge $((created - 1)) -a "$n" -le "$created"
check "pool growth: all of them from redis_pool_acquire" "$n" "$(site_open redis redis_pool_acquire)"
check "pool growth: http is not blamed" 0 "$(open_in http)"
check "pool growth: the verdict's first leak is redis at redis_pool_acquire" "redis redis_pool_acquire" \
  "$(jq -r '.leaks[0] | "\(.subsystem) \(.site | split(" ")[0])"' "$S")"

crawl frontier-fd
n=$(open_in frontier)
check_true "frontier-fd: frontier files pile up ($n)" test "$n" -ge 100
check "frontier-fd: all opened in frontier_read_batch" "$n" "$(site_open frontier frontier_read_batch)"
check "frontier-fd: matches the crawler's own count" "$(jq .frontier_files_open "$TMP/frontier-fd.stats")" "$n"
check "frontier-fd: redis is not blamed" 0 "$(open_in redis)"
check "frontier-fd: the verdict's first leak is frontier at frontier_read_batch" "frontier frontier_read_batch" \
  "$(jq -r '.leaks[0] | "\(.subsystem) \(.site | split(" ")[0])"' "$S")"

# Seed 000: page bodies kept after the push to fetch:queue. The heap view
# must name the page buffers, their size, and who allocated them.
crawl retain-pages
top=$(jq -r "$FETCHER | .heap.sites[0] | \"\\(.live_bytes) \\(.frames | map(split(\" \")[0]) | join(\"<\"))\"" "$S")
check_true "retain-pages: the largest live site holds megabytes (${top%% *} B)" test "${top%% *}" -gt 10000000
check_true "retain-pages: it is the page buffer of fetch_write_body" grep -q "fetch_page_buffer_grow<fetch_write_body" <<<"$top"
check_true "retain-pages: the retaining context is a live site too" \
  test "$(jq "[$FETCHER | .heap.sites[] | select(any(.frames[]; contains(\"fetch_retain_page_context\")))] | length" "$S")" -gt 0

crawl curl-handle
n=$(jq "[$FETCHER | .heap.sites[] | select(any(.frames[]; contains(\"curl_easy_init\")) and any(.frames[]; contains(\"fetch_start_transfer\"))) | .live_allocs] | add // 0" "$S")
check_true "curl-handle: easy handles from fetch_start_transfer stay live ($n)" test "$n" -ge 10
alive=$(jq .curl_easy_alive "$TMP/curl-handle.stats")
check_true "curl-handle: at least one live block per handle the crawler leaked ($alive)" test "$n" -ge "$alive" -a "$alive" -gt 0

# Seed 002: no connection cap under a low descriptor limit ends in EMFILE.
WPORT=$(cat "$TMP/wide.port")
crawl http-unbounded 96 32
emfile_http=$(jq "[$FETCHER | .fd.open_failed.http.EMFILE // 0] | add" "$S")
check_true "http-unbounded: http sockets fail with EMFILE ($emfile_http)" test "$emfile_http" -gt 0
others=$(jq "[$FETCHER | .fd.open_failed | to_entries[] | select(.key == \"frontier\" or .key == \"redis\") | .value.EMFILE // 0] | add // 0" "$S")
check_true "http-unbounded: frontier or redis opens fail as a consequence ($others)" test "$others" -gt 0
holder=$(jq -r "$FETCHER | .fd.open_at_limit | to_entries | max_by(.value) | .key" "$S")
check "http-unbounded: at the limit, http held the most descriptors" http "$holder"
finish
