# live.sh - helpers for the live dashboard tests (sourced after tests/e2e/lib.sh):
# a `leakscope stack` on free loopback ports, PromQL from the shell, and
# every query of one dashboard asked of the live Prometheus.
DT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DASH=$(cd "$DT/../../dashboards" && pwd)

# wait_for SECONDS CMD...: polls CMD every 0.2 s.
wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.2
  done
}

# q EXPR: the first value of an instant query, or "none".
q() {
  curl -s --max-time 10 --data-urlencode "query=$1" "$PROM/api/v1/query" | jq -r '.data.result[0].value[1] // "none"'
}

# start_stack [STACK OPTIONS...]: `leakscope stack` over $LEAKSCOPE_DIR with 2 s
# scrapes (a few may time out on a loaded machine; the queries' 10 s rate
# interval still holds several samples); sets PROM. Stopped at exit.
start_stack() {
  local sp pp
  sp=$(free_port)
  pp=$(free_port)
  PROM=http://127.0.0.1:$pp
  "$LEAKSCOPE" stack --dir "$LEAKSCOPE_DIR" --listen 127.0.0.1:$sp --prometheus-listen 127.0.0.1:$pp \
    --scrape-interval 2s --idle-after 1 "$@" >"$TMP/stack.out" 2>"$TMP/stack.err" &
  STACK=$!
  CLEANUP+=('kill -INT $STACK; wait $STACK')
  check_true "stack running" wait_for 150 grep -q "running" "$TMP/stack.out"
}

# samples SELECTOR N: at least N scraped samples of SELECTOR in the last 30 s.
samples() {
  local n
  n=$(q "max(count_over_time($1[30s]))")
  [ "$n" != none ] && [ "${n%.*}" -ge "$2" ]
}

# every_query_answers DASHBOARD.json: each of its queries returns data.
every_query_answers() {
  /usr/bin/python3 "$DT/exprs.py" "$DASH" json 10s "$1" >"$TMP/queries.json"
  check_true "every query of $1 returns data" /usr/bin/python3 "$DT/live_check.py" "$PROM" "$TMP/queries.json"
}

# descendant ROOT EXE: the first descendant of ROOT running EXE (`lks run`
# ignores SIGINT and waits, so a signal must go to the program itself).
descendant() {
  local p queue=("$1") exe
  exe=$(readlink -f "$2")
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    if [ "$(readlink /proc/$p/exe 2>/dev/null)" = "$exe" ]; then
      echo "$p"
      return 0
    fi
    queue+=($(ps --ppid "$p" -o pid=))
  done
  return 1
}
