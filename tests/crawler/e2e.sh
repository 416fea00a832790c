#!/usr/bin/env bash
# End-to-end tests of leakscope-crawler against a real redis-server and the
# synthetic web (leakscope-web), each on a free loopback port in a temporary
# directory, always stopped on exit.
#
#   e2e.sh BIN_DIR SCENARIO
#
# Scenarios: crawl, max-pages, redis-restart, parser-kill, resume, bad-input,
# operations (metrics, status, SIGHUP), dead-server, redis-lost, valgrind,
# inject-<mode> for each --inject mode, and inject-none (the baseline).
set -euo pipefail

BIN=$1
SCENARIO=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/leakscope-crawler-e2e.XXXXXX)
PIDS=()

cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        echo "--- crawl.log (tail)"; tail -n 30 "$T/crawl.log" 2>/dev/null || true
        echo "--- stats.json"; cat "$T/stats.json" 2>/dev/null || true
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() { echo "FAIL: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

REDIS_PORT=$(free_port)
start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$T" --dbfilename dump.rdb --save '' \
        --appendonly no --daemonize no >>"$T/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 100); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    fail "redis-server did not start"
}

# start_web HOSTS PAGES [extra args]
start_web() {
    local hosts=$1 pages=$2
    shift 2
    WEB_ARGS=(--hosts "$hosts" --pages "$pages" --crawl-delay 0.2 --slow-ms 300 "$@")
    "$BIN/leakscope-web" --port 0 --port-file "$T/web.port" --access-log "$T/access.log" "${WEB_ARGS[@]}" \
        2>>"$T/web.log" &
    PIDS+=("$!")
    for _ in $(seq 100); do
        [ -s "$T/web.port" ] && break
        sleep 0.05
    done
    WEB_PORT=$(cat "$T/web.port")
    "$BIN/leakscope-web" "${WEB_ARGS[@]}" --dump-graph >"$T/graph.tsv"
    echo "http://h0.example/" >"$T/seeds.txt"
}

# crawl [extra args]: runs in the background, sets CRAWLER_PID
crawl_bg() {
    "$BIN/leakscope-crawler" --seeds "$T/seeds.txt" --data-dir "$T/data" --redis "127.0.0.1:$REDIS_PORT" \
        --connect-to "127.0.0.1:$WEB_PORT" --stats-json "$T/stats.json" --log "$T/crawl.log" \
        --status-interval 1 "$@" &
    CRAWLER_PID=$!
}

# wait_crawler SECONDS: the crawl must end by itself in time, with status 0
wait_crawler() {
    local limit=$1
    for _ in $(seq $((limit * 10))); do
        kill -0 "$CRAWLER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$CRAWLER_PID" 2>/dev/null; then
        kill "$CRAWLER_PID"
        fail "crawl did not finish within ${limit}s"
    fi
    wait "$CRAWLER_PID" || fail "crawler exited with status $?"
}

stat() { jq -r ".$1" "$T/stats.json"; }

groundtruth() {
    python3 "$HERE/groundtruth.py" --graph "$T/graph.tsv" --access-log "$T/access.log" --seeds "$T/seeds.txt" "$@"
}

# The status lines' values of one field ("created", "easy_alive", ...).
status_series() { grep -o " $1=[0-9]*" "$T/crawl.log" | cut -d= -f2 | tr '\n' ' '; }

# A clean crawl leaves nothing behind in its own counts.
check_clean_counts() {
    [ "$(stat curl_easy_alive)" = 0 ] || fail "curl_easy_alive=$(stat curl_easy_alive)"
    [ "$(stat retained_page_bytes)" = 0 ] || fail "retained_page_bytes=$(stat retained_page_bytes)"
    [ "$(stat frontier_files_open)" = 0 ] || fail "frontier_files_open=$(stat frontier_files_open)"
    [ "$(stat redis_pool_in_use)" = 0 ] || fail "redis_pool_in_use=$(stat redis_pool_in_use)"
    [ "$(stat redis_pool_created)" -le 8 ] || fail "redis_pool_created=$(stat redis_pool_created)"
}

check_full_crawl() {
    groundtruth --delay "$1"
    [ "$(stat pages_parsed)" = "$(stat pages_queued)" ] || fail "parsed $(stat pages_parsed) != queued $(stat pages_queued)"
    local pages
    pages=$(grep -vc '/robots.txt ' "$T/access.log")
    [ "$(stat pages_fetched)" = "$pages" ] || fail "pages_fetched=$(stat pages_fetched) but the server saw $pages"
}

# inject MODE CHECK...: a short crawl of a larger web with the leak on.
run_inject() {
    local mode=$1
    shift
    start_redis
    start_web 40 400
    crawl_bg --delay 0.05 --duration 7 --inject "$mode" --workers 64 "$@"
    wait_crawler 30
}

# The value of a field must grow across the status lines: a steady leak.
check_growth() {
    local field=$1 min=$2 series first last
    series=$(status_series "$field")
    first=$(echo "$series" | awk '{print $2}')
    last=$(echo "$series" | awk '{print $(NF)}')
    echo "$field over time: $series"
    [ -n "$first" ] && [ "$last" -ge "$min" ] && [ "$last" -gt "$first" ] ||
        fail "$field does not climb to $min: $series"
}

case $SCENARIO in
crawl)
    start_redis
    start_web 12 40
    crawl_bg --delay 0.05
    wait_crawler 60
    check_full_crawl 0.05
    check_clean_counts
    [ "$(stat errors)" -gt 0 ] && [ "$(stat redirects)" -gt 0 ] && [ "$(stat robots_disallowed)" -gt 0 ] &&
        [ "$(stat too_large)" -gt 0 ] && [ "$(stat not_html)" -gt 0 ] ||
        fail "the web's errors, redirects, disallows, huge and binary pages were not all met"
    ;;
max-pages)
    start_redis
    start_web 12 40
    crawl_bg --delay 0.05 --max-pages 60
    wait_crawler 60
    groundtruth --delay 0.05 --subset --min-pages 60
    [ "$(stat pages_fetched)" = 60 ] || fail "pages_fetched=$(stat pages_fetched), wanted 60"
    [ "$(stat pages_parsed)" = "$(stat pages_queued)" ] || fail "not every fetched page was parsed"
    ;;
redis-restart)
    start_redis
    start_web 12 40
    crawl_bg --delay 0.1
    sleep 3
    redis-cli -p "$REDIS_PORT" shutdown save >/dev/null 2>&1 || true
    wait "$REDIS_PID" 2>/dev/null || true
    sleep 2
    start_redis
    wait_crawler 90
    check_full_crawl 0.1
    [ "$(stat redis_errors)" -gt 0 ] || fail "the crawler never saw Redis go away"
    ;;
parser-kill)
    start_redis
    start_web 12 40
    crawl_bg --delay 0.05
    for _ in 1 2 3; do
        sleep 2
        victim=$(pgrep -P "$CRAWLER_PID" | head -n 1 || true)
        [ -n "$victim" ] && kill -9 "$victim"
    done
    wait_crawler 60
    check_full_crawl 0.05
    [ "$(stat parser_restarts)" -ge 2 ] || fail "parser_restarts=$(stat parser_restarts)"
    ;;
resume)
    start_redis
    start_web 12 40
    crawl_bg --delay 0.1
    sleep 3
    kill -INT "$CRAWLER_PID"
    wait "$CRAWLER_PID" || fail "SIGINT: exit status $?"
    first=$(stat pages_fetched)
    crawl_bg --delay 0.1 --resume
    wait_crawler 60
    echo "first run fetched $first, second $(stat pages_fetched)"
    [ "$first" -gt 0 ] && [ "$(stat pages_fetched)" -gt 0 ] || fail "one of the runs fetched nothing"
    groundtruth --delay 0.1
    ;;
bad-input)
    start_redis
    start_web 3 10
    out=$("$BIN/leakscope-crawler" --seeds "$T/nope.txt" --data-dir "$T/data" --redis "127.0.0.1:$REDIS_PORT" 2>&1) &&
        fail "missing seeds file accepted"
    echo "$out" | grep -q "cannot read seeds file" || fail "unclear message: $out"
    out=$("$BIN/leakscope-crawler" --seeds "$T/seeds.txt" --data-dir "$T/data" --redis "127.0.0.1:$(free_port)" 2>&1) &&
        fail "unreachable Redis accepted"
    echo "$out" | grep -qi "cannot connect to Redis" || fail "unclear message: $out"
    printf '# comment\n\nnot a url\nftp://h1.example/\nhttp://H0.EXAMPLE:80/#top\n' >"$T/seeds.txt"
    crawl_bg --delay 0.05
    wait_crawler 30
    grep -q "not a crawlable" "$T/crawl.log" || fail "bad seed lines not reported"
    echo "http://h0.example/" >"$T/seeds.txt"
    groundtruth --delay 0.05
    ;;
inject-none)
    run_inject none
    check_clean_counts
    [ "$(stat redis_pool_created)" -le 2 ] || fail "pool grew without injection"
    ;;
inject-retain-pages)
    run_inject retain-pages
    check_growth retained_bytes 5000000
    check_growth heap 5000000
    [ "$(stat retained_pages)" -ge $(($(stat pages_queued) * 8 / 10)) ] || fail "retained_pages=$(stat retained_pages)"
    ;;
inject-redis-pool-growth)
    run_inject redis-pool-growth
    check_growth created 12
    [ "$(stat redis_pool_in_use)" -le 30 ] && [ "$(stat redis_pool_idle)" -le 2 ] ||
        fail "in_use/idle should stay small while created climbs"
    series=$(status_series in_use)
    for v in $series; do [ "$v" -le 1 ] || fail "in_use=$v in a status line"; done
    ;;
inject-frontier-fd)
    # A slower crawl (about 80 domain turns a second) keeps the leak under
    # the common RLIMIT_NOFILE of 1024 within the run.
    run_inject frontier-fd --delay 0.5
    check_growth frontier_open 50
    ;;
inject-curl-handle)
    run_inject curl-handle
    check_growth easy_alive 10
    # Failed transfers: pages (errors) and robots.txt answers of 404.
    [ "$(stat curl_easy_alive)" -le $(($(stat errors) + $(stat robots_fetched))) ] ||
        fail "more handles alive than failed transfers"
    ;;
inject-http-unbounded)
    # 300 hosts: each newly discovered host adds a kept-alive connection.
    start_redis
    start_web 300 20
    (ulimit -n 96 && exec "$BIN/leakscope-crawler" --seeds "$T/seeds.txt" --data-dir "$T/data" \
        --redis "127.0.0.1:$REDIS_PORT" --connect-to "127.0.0.1:$WEB_PORT" --stats-json "$T/stats.json" \
        --log "$T/crawl.log" --status-interval 1 --delay 0.05 --duration 6 --workers 32 --inject http-unbounded) &
    CRAWLER_PID=$!
    wait_crawler 30
    # Far past --workers 32, up to the descriptor limit.
    [ "$(stat http_sockets_peak)" -ge 60 ] || fail "http_sockets_peak=$(stat http_sockets_peak)"
    emfile=$(( $(stat http_socket_emfile) + $(stat frontier_open_emfile) ))
    [ "$emfile" -gt 0 ] || fail "no EMFILE under RLIMIT_NOFILE=96"
    echo "peak http sockets $(stat http_sockets_peak), EMFILE http $(stat http_socket_emfile) frontier $(stat frontier_open_emfile)"
    ;;
inject-http-bounded)
    # The same as inject-http-unbounded without the leak: no EMFILE.
    start_redis
    start_web 300 20
    (ulimit -n 96 && exec "$BIN/leakscope-crawler" --seeds "$T/seeds.txt" --data-dir "$T/data" \
        --redis "127.0.0.1:$REDIS_PORT" --connect-to "127.0.0.1:$WEB_PORT" --stats-json "$T/stats.json" \
        --log "$T/crawl.log" --status-interval 1 --delay 0.05 --duration 6 --workers 32) &
    CRAWLER_PID=$!
    wait_crawler 30
    [ "$(stat http_socket_emfile)" = 0 ] && [ "$(stat frontier_open_emfile)" = 0 ] || fail "EMFILE without injection"
    [ "$(stat http_sockets_peak)" -le 32 ] || fail "http_sockets_peak=$(stat http_sockets_peak) above --workers"
    ;;
operations)
    # Prometheus endpoint, status lines, and log rotation (SIGHUP) mid-crawl.
    start_redis
    start_web 12 40
    MPORT=$(free_port)
    crawl_bg --delay 0.1 --metrics-port "$MPORT"
    sleep 2
    metrics=$(curl -sf "http://127.0.0.1:$MPORT/metrics") || fail "no /metrics"
    for m in crawler_pages_fetched_total crawler_redis_pool_created_total crawler_redis_pool_in_use \
        crawler_redis_pool_idle crawler_fetch_queue_length crawler_scheduled_domains crawler_curl_easy_alive \
        crawler_fds_open crawler_heap_live_bytes; do
        echo "$metrics" | grep -q "^$m " || fail "metric $m missing"
    done
    [ "$(echo "$metrics" | awk '/^crawler_pages_fetched_total /{print $2}')" -gt 0 ] || fail "no pages in /metrics"
    # Listening sockets in /proc/net/tcp: state 0A, local address 0100007F (127.0.0.1).
    hexport=$(printf '%04X' "$MPORT")
    listen=$(awk -v p=":$hexport" '$4 == "0A" && substr($2, 9) == p { print $2 }' /proc/net/tcp /proc/net/tcp6)
    [ "$listen" = "0100007F:$hexport" ] || fail "metrics listen on '$listen', not 127.0.0.1 only"
    for p in $(pgrep -P "$CRAWLER_PID"); do
        tr '\0' '\n' <"/proc/$p/environ" | grep -qx LEAKSCOPE_ROLE=parser || fail "parser $p not labelled for leakscope"
    done
    mv "$T/crawl.log" "$T/crawl.log.1"
    kill -HUP "$CRAWLER_PID"
    wait_crawler 60
    grep -q "status: " "$T/crawl.log.1" || fail "no status line before rotation"
    grep -q "fetcher\[.*nothing left to crawl" "$T/crawl.log" || fail "fetcher did not reopen its log"
    grep -q "parser-[01]\[.*parsed [0-9]* pages" "$T/crawl.log" || fail "parsers did not reopen the log"
    groundtruth --delay 0.1
    ;;
dead-server)
    # Every host refuses connections, then every host accepts and never answers.
    start_redis
    WEB_PORT=$(free_port)
    echo "http://h0.example/" >"$T/seeds.txt"
    crawl_bg --delay 0.05 --timeout 1
    wait_crawler 30
    [ "$(stat robots_fetched)" = 1 ] && [ "$(stat pages_fetched)" = 0 ] || fail "refused: unexpected counts"
    grep -q "robots.txt.*failed\|Couldn't connect\|Failed to connect" "$T/crawl.log" || fail "refusal not logged"
    python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(64);
print(s.getsockname()[1], flush=True); time.sleep(60)' >"$T/blackhole.port" &
    PIDS+=("$!")
    for _ in $(seq 300); do [ -s "$T/blackhole.port" ] && break; sleep 0.1; done
    WEB_PORT=$(cat "$T/blackhole.port")
    [ -n "$WEB_PORT" ] || fail "blackhole server did not start"
    start=$(date +%s)
    crawl_bg --delay 0.05 --timeout 1
    wait_crawler 30
    [ $(($(date +%s) - start)) -le 10 ] || fail "a silent server held the crawl"
    [ "$(stat robots_fetched)" = 1 ] || fail "silent: robots_fetched=$(stat robots_fetched)"
    grep -qi "timed out\|timeout" "$T/crawl.log" || fail "timeout not logged"
    ;;
redis-lost)
    # Redis goes away for good: the crawler stops cleanly, says why, exits 2.
    start_redis
    start_web 12 40
    crawl_bg --delay 0.1 --redis-retry 2
    sleep 2
    kill -9 "$REDIS_PID"
    for _ in $(seq 100); do kill -0 "$CRAWLER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$CRAWLER_PID" 2>/dev/null && fail "crawler still running 10 s after Redis died"
    status=0
    wait "$CRAWLER_PID" || status=$?
    [ "$status" = 2 ] || fail "exit status $status, wanted 2"
    grep -q "Redis unreachable" "$T/crawl.log" || fail "no clear message"
    [ -z "$(pgrep -P "$CRAWLER_PID" || true)" ] || fail "parsers left behind"
    ;;
valgrind)
    # memcheck on the fetcher: a clean crawl has no invalid access and no
    # lost block; the same crawl with --inject retain-pages is caught.
    start_redis
    start_web 6 30
    vg() {
        valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 --log-file="$T/vg.$1" \
            "$BIN/leakscope-crawler" --seeds "$T/seeds.txt" --data-dir "$T/data" --redis "127.0.0.1:$REDIS_PORT" \
            --connect-to "127.0.0.1:$WEB_PORT" --delay 0.02 --max-pages 60 --log "$T/crawl.log" \
            --stats-json "$T/stats.json" --inject "$1"
    }
    vg none || { cat "$T/vg.none"; fail "memcheck errors in a clean crawl"; }
    grep -q "ERROR SUMMARY: 0 errors" "$T/vg.none" || fail "memcheck summary missing"
    [ "$(stat pages_fetched)" = 60 ] || fail "the crawl under valgrind did not run"
    status=0
    vg retain-pages || status=$?
    [ "$status" = 9 ] || fail "memcheck did not catch retain-pages (status $status)"
    grep "definitely lost" "$T/vg.retain-pages" || fail "no lost blocks reported"
    ;;
*)
    fail "unknown scenario $SCENARIO"
    ;;
esac
echo "PASS: $SCENARIO"
