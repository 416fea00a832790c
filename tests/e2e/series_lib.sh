# series_lib.sh - helpers for the serve/record end-to-end tests (sourced
# after lib.sh): start `leakscope serve` on a free port and a traced program
# in the background, both stopped by the EXIT cleanup.

# start_serve ARGS...: starts serve on 127.0.0.1:0; sets SERVE_PID, SERVE_PORT.
start_serve() {
  local log="$TMP/serve.$RANDOM.err"
  # exec in the background subshell, so $! is serve itself (for kill).
  (exec "$LEAKSCOPE" serve --listen 127.0.0.1:0 "$@" 2>"$log") &
  SERVE_PID=$!
  CLEANUP+=("kill $SERVE_PID; wait $SERVE_PID")
  SERVE_PORT=""
  for _ in $(seq 200); do
    SERVE_PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$log")
    [ -n "$SERVE_PORT" ] && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "serve did not start:" >&2
  cat "$log" >&2
  return 1
}

# scrape [ACCEPT]: the exposition, text format unless ACCEPT is given.
scrape() {
  if [ $# -gt 0 ]; then
    curl -sf -H "Accept: $1" "http://127.0.0.1:$SERVE_PORT/metrics"
  else
    curl -sf "http://127.0.0.1:$SERVE_PORT/metrics"
  fi
}

# metric NAME LABELMATCH...: value of the one sample whose line has NAME{ and
# contains every LABELMATCH (e.g. 'subsystem="log"'); empty if none.
metric() {
  local name=$1
  shift
  scrape | awk -v n="$name{" -v bare="$name " -v want="$*" '
    index($0, n) == 1 || index($0, bare) == 1 {
      ok = 1; k = split(want, w, " ")
      for (i = 1; i <= k; i++) if (index($0, w[i]) == 0) ok = 0
      if (ok) { print $NF; exit }
    }'
}

# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds.
wait_for() {
  local t=$1
  shift
  local n=$((t * 5))
  for _ in $(seq "$n"); do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}
