#!/usr/bin/env bash
# `leakscope stack`: starts `leakscope serve` and Debian's Prometheus on the
# loopback ports it is given, with dashboards/prometheus.yml and the alert
# rules; stops both and removes its temporary storage on SIGINT and SIGTERM;
# stops the survivor and fails when one of them dies; refuses bad input with a
# clear message and a non-zero exit. Needs: LEAKSCOPE.
. "$(dirname "$0")/lib.sh"

wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.2
  done
}
gone() { ! kill -0 "$1" 2>/dev/null; }

# start NAME: runs the stack on fresh free ports; sets STACK, SP, PP, SERVE, PROMPID, DATA.
start() {
  SP=$(free_port)
  PP=$(free_port)
  "$LEAKSCOPE" stack --dir "$LEAKSCOPE_DIR" --listen 127.0.0.1:$SP --prometheus-listen 127.0.0.1:$PP \
    --scrape-interval 1s >"$TMP/$1.out" 2>"$TMP/$1.err" &
  STACK=$!
  CLEANUP+=("kill -INT $STACK; wait $STACK")
  check_true "$1: running" wait_for 150 grep -q "running" "$TMP/$1.out"
  SERVE=$(ps --ppid $STACK -o pid=,args= | awk '$3 == "serve" {print $1}')
  PROMPID=$(ps --ppid $STACK -o pid=,args= | awk '$2 == "prometheus" {print $1}')
  DATA=$(tr '\0' '\n' </proc/$PROMPID/cmdline | sed -n 's/^--storage.tsdb.path=//p')
}

# stop NAME SIGNAL: the stack exits 0 and leaves nothing behind.
stop() {
  kill -"$2" $STACK
  wait $STACK
  check "$1: exit status after SIG$2" 0 "$?"
  check_true "$1: exporter stopped" gone "$SERVE"
  check_true "$1: prometheus stopped" gone "$PROMPID"
  check_true "$1: temporary storage removed" test ! -e "$(dirname "$DATA")"
  check_true "$1: says it stopped" grep -q "leakscope stack: stopped" "$TMP/$1.err"
}

start sigint
check_true "sigint: prints the exporter" grep -q "exporter    http://127.0.0.1:$SP/metrics" "$TMP/sigint.out"
check_true "sigint: prints prometheus and its 6 rules" \
  grep -q "prometheus  http://127.0.0.1:$PP  (6 alert rules" "$TMP/sigint.out"
check "sigint: exporter answers" 200 "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$SP/metrics)"
check "sigint: prometheus ready" 200 "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$PP/-/ready)"
check_true "sigint: prometheus binds loopback only" \
  grep -q -- "--web.listen-address=127.0.0.1:$PP" /proc/$PROMPID/cmdline
check_true "sigint: storage is private (0700)" test "$(stat -c %a "$(dirname "$DATA")")" = 700
up() { [ "$(curl -s http://127.0.0.1:$PP/api/v1/targets |
  jq -r '.data.activeTargets[] | select(.labels.job=="leakscope") | .health')" = up ]; }
check_true "sigint: prometheus scrapes the exporter" wait_for 30 up
stop sigint INT

start sigterm
stop sigterm TERM

# Prometheus dies: the stack stops the exporter and fails.
start crash
kill -KILL "$PROMPID"
wait $STACK
check "crash: non-zero exit when prometheus dies" 1 "$?"
check_true "crash: exporter stopped" gone "$SERVE"
check_true "crash: says which child" grep -q "prometheus (pid $PROMPID) killed by signal 9" "$TMP/crash.err"

# Bad input: clear message, non-zero exit, nothing left running.
lks stack --dashboards "$TMP/nonexistent" 2>"$TMP/err"
check "missing dashboards folder exits 2" 2 "$?"
check_true "missing dashboards folder is named" grep -q "dashboards folder '$TMP/nonexistent'" "$TMP/err"
lks stack --listen localhost:99999 2>"$TMP/err"
check "bad --listen exits 2" 2 "$?"
lks stack --scrape-interval fast 2>"$TMP/err"
check "bad --scrape-interval exits 2" 2 "$?"
python3 -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' >"$TMP/busy" &
BUSY=$!
CLEANUP+=("kill $BUSY")
wait_for 10 test -s "$TMP/busy"
port=$(cat "$TMP/busy")
timeout 60 "$LEAKSCOPE" stack --dir "$LEAKSCOPE_DIR" --listen 127.0.0.1:$(free_port) \
  --prometheus-listen 127.0.0.1:$port >/dev/null 2>"$TMP/err"
check "prometheus port in use exits 1" 1 "$?"
check_true "prometheus port in use: its log says why" grep -q "address already in use" "$TMP/err"
finish
