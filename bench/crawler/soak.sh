#!/usr/bin/env bash
# A long clean crawl (no --inject) of a large synthetic web, sampling the
# descriptors and RSS of the fetcher and of each parser, and the fetcher's
# live heap, every 10 s: with no leak injected, all stay flat after warm-up.
#
#   bench/crawler/soak.sh [SECONDS] [OUT.csv]     (default 600 s, soak.csv)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-600}
OUT=${2:-soak.csv}
BIN=${BIN:-build/bin}
T=$(mktemp -d /tmp/leakscope-crawler-soak.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(port)
WP=$(port)
redis-server --port "$RP" --bind 127.0.0.1 --dir "$T" --save '' --appendonly no --daemonize no >/dev/null &
PIDS+=("$!")
"$BIN/leakscope-web" --port "$WP" --hosts 3000 --pages 300 2>/dev/null &
PIDS+=("$!")
sleep 1
echo "http://h0.example/" >"$T/seeds.txt"
"$BIN/leakscope-crawler" --seeds "$T/seeds.txt" --data-dir "$T/data" --redis "127.0.0.1:$RP" \
    --connect-to "127.0.0.1:$WP" --delay 0.5 --duration "$DURATION" --status-interval 10 \
    --log "$T/crawl.log" --stats-json "$T/stats.json" &
CRAWLER=$!
PIDS+=("$CRAWLER")
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
echo "t_s,pages_fetched,fetcher_fds,fetcher_rss_kb,fetcher_heap_live_bytes,parser0_fds,parser0_rss_kb,parser1_fds,parser1_rss_kb,redis_pool_created,http_sockets,curl_easy_alive" >"$OUT"
start=$(date +%s)
while kill -0 "$CRAWLER" 2>/dev/null; do
    sleep 10
    kill -0 "$CRAWLER" 2>/dev/null || break
    read -r p0 p1 < <(pgrep -P "$CRAWLER" | sort -n | tr "\n" " ") || true
    line=$(grep "status:" "$T/crawl.log" | tail -n 1) || true
    get() { echo "$line" | grep -o " $1=[0-9]*" | cut -d= -f2 || true; }
    echo "$(($(date +%s) - start)),$(get fetched),$(fds "$CRAWLER"),$(rss "$CRAWLER"),$(get heap),$(fds "$p0"),$(rss "$p0"),$(fds "$p1"),$(rss "$p1"),$(get created),$(get http_sockets),$(get easy_alive)" >>"$OUT"
done
wait "$CRAWLER"
cat "$T/stats.json"
