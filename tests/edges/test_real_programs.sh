#!/usr/bin/env bash
# Issue 7 with programs we did not write: Debian's python3 (subprocess with
# vfork, multiprocessing with fork, mmapped *.db files, sqlite3), node
# (libuv closes with raw syscalls), redis-server (anetPipe, fork for
# BGSAVE) and nginx (socketpair channels to forked workers). Numbers are held
# against /proc and against what each program says it did.
# Needs: LEAKSCOPE, FDTRACK, /usr/bin/python3, node, redis-server, redis-cli,
# nginx, curl, jq.
. "$(dirname "$0")/../e2e/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
mkdir -p "$LEAKSCOPE_DIR" && chmod 700 "$LEAKSCOPE_DIR"
wait_line() {
  for _ in $(seq 150); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# --- Python: 5 leaked files survive three subprocess.run (vfork) calls; the
# mmapped counter_123.db is metrics, the real database is sqlite.
mkdir -p "$TMP/py"
isolated env LD_PRELOAD="$FDTRACK" "$PY" "$HERE/py_subprocess.py" "$TMP/py" >"$TMP/py.out" 2>&1 &
PYJOB=$!
CLEANUP+=("kill $PYJOB")
wait_line "$TMP/py.out" ready || cat "$TMP/py.out"
PYPID=$(awk '/^pid/ {print $2}' "$TMP/py.out")
CLEANUP+=("kill $PYPID")
lks show --json "$PYPID" >"$TMP/py.json"
f() { jq -r ".processes[0].fd | $1" "$TMP/py.json"; }
check "python: kernel_open is /proc/PID/fd" "$(ls /proc/$PYPID/fd | wc -l)" "$(f .kernel_open)"
check "python: nothing unattributed now (the vfork children wiped nothing)" 0 "$(f .unattributed_now)"
leakfd=$(ls -l /proc/$PYPID/fd | grep -c '/leak[0-9].txt')
check "python: /proc shows the 5 leaked files" 5 "$leakfd"
# open() made the 5 files: one Python call site; prometheus_client-style
# counter_123.db (which mmap dup()s) is metrics, not a file nor sqlite.
check "python: the file subsystem holds the 5 leaked files /proc shows" "$leakfd" "$(f '.by_subsystem.file.open')"
promfd=$(ls -l /proc/$PYPID/fd | grep -c 'counter_123.db')
check "python: the mmapped counter_123.db is metrics" "$promfd" "$(f '.by_subsystem.metrics.open')"
check "python: the verdict holds the files opened by open()" "$leakfd file" \
  "$(jq -r '[.leaks[] | select(.subsystem == "file") | "\(.open) \(.subsystem)"] | join(",")' "$TMP/py.json")"
dbfd=$(ls -l /proc/$PYPID/fd | grep -c 'real.sqlite')
check "python: the SQLite database (and only it) is sqlite" "$dbfd" "$(f '.by_subsystem.sqlite.open')"
kill -TERM "$PYPID"; wait $PYJOB

# --- Python multiprocessing (fork): the parent's 50 pooled sockets are
# inherited by each worker, never the worker's leak.
lks run --quiet --summary "$TMP/mp.json" -- "$PY" "$HERE/py_multiproc.py" >"$TMP/mp.out" 2>&1
parent=$(awk '/^parent/ {print $2}' "$TMP/mp.out")
m() { jq -r "$1" "$TMP/mp.json"; }
workers=$(awk '/^workers/ {$1 = ""; print}' "$TMP/mp.out" | xargs)
check_true "multiprocessing: at most 3 workers seen, at least one did work ($workers)" \
  test "$(m "[.processes[] | select(.forked_from == $parent)] | length")" -le 3 -a -n "$workers"
for w in $workers; do
  check "multiprocessing: worker $w (did work) forked from the parent, ppid and forked_from" 1 \
    "$(m "[.processes[] | select(.pid == $w and .ppid == $parent and .forked_from == $parent)] | length")"
done
check "multiprocessing: each worker inherited the 50 sockets" "" \
  "$(m "[.processes[] | select(.forked_from == $parent) | .fd.by_subsystem.socket.open | select(. != 50)] | map(tostring) | join(\",\")")"
check "multiprocessing: workers are marked as inheriting at least 50" true \
  "$(m "[.processes[] | select(.forked_from == $parent) | .fd.inherited_by_fork >= 50] | all")"
check "multiprocessing: no worker has a leak" 0 "$(m "[.leaks[] | select(.pid != $parent)] | length")"
check "multiprocessing: the parent opened and closed its 50 sockets" "50 50" \
  "$(m ".processes[] | select(.pid == $parent) | .fd.by_subsystem.socket | \"\\(.opened) \\(.closed)\"")"
check "multiprocessing: workers (os._exit) are not running" false \
  "$(m "[.processes[] | select(.forked_from == $parent) | .running] | any")"

# --- node: 200 requests, everything closed by libuv's raw close syscalls.
lks run --fd --quiet --summary "$TMP/node.json" -- node "$HERE/node_server.js" 200 >"$TMP/node.out" 2>&1
n() { jq -r ".processes[0].fd | $1" "$TMP/node.json"; }
check "node: served 200" "served 200" "$(cut -d' ' -f1-2 "$TMP/node.out")"
check "node: no socket open at exit" 0 "$(n .by_subsystem.socket.open)"
check "node: every socket opened was closed" "$(n .by_subsystem.socket.opened)" "$(n .by_subsystem.socket.closed)"
check "node: at least 400 sockets (200 accepted, 200 client)" true "$(n '.by_subsystem.socket.opened >= 400')"
check "node: closes no hook saw were counted" true "$(n '.closed_unseen >= 200')"
check "node: no leak" 0 "$(jq '.leaks | length' "$TMP/node.json")"

# --- redis-server: anetPipe pairs and a BGSAVE child are no leak.
RPORT=$(free_port)
lks run --fd --quiet --summary "$TMP/redis.json" -- redis-server --port "$RPORT" --bind 127.0.0.1 \
  --save "" --appendonly no --dir "$TMP" --daemonize no >"$TMP/redis.out" 2>&1 &
RJOB=$!
CLEANUP+=("redis-cli -p $RPORT shutdown nosave" "kill $RJOB")
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
for i in $(seq 20); do redis-cli -p "$RPORT" set "k$i" v >/dev/null; done
redis-cli -p "$RPORT" bgsave >/dev/null
for _ in $(seq 100); do
  [ "$(redis-cli -p "$RPORT" info persistence | tr -d '\r' | awk -F: '/^rdb_bgsave_in_progress/ {print $2}')" = 0 ] && break
  sleep 0.1
done
redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
wait $RJOB
check "redis: the server and its BGSAVE child" 2 "$(jq '.processes | length' "$TMP/redis.json")"
check "redis: the child is told apart (forked from the server)" 1 \
  "$(jq '[.processes[] | select(.forked_from > 0)] | length' "$TMP/redis.json")"
check "redis: no leak (pipes hold two descriptors per call)" 0 "$(jq '.leaks | length' "$TMP/redis.json")"
check "redis: the server's pipes are open at exit" true \
  "$(jq '[.processes[] | select(.forked_from == 0) | .fd.by_subsystem.pipe.open] | .[0] >= 2' "$TMP/redis.json")"

# --- nginx: master and 2 workers, socketpair channels.
NPORT=$(free_port)
mkdir -p "$TMP/nginx/html" "$TMP/nginx/logs"
echo "hello" >"$TMP/nginx/html/index.html"
cat >"$TMP/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log;
events { worker_connections 64; }
http {
  access_log $TMP/nginx/logs/access.log;
  client_body_temp_path $TMP/nginx/tmp;
  proxy_temp_path $TMP/nginx/tmp;
  fastcgi_temp_path $TMP/nginx/tmp;
  uwsgi_temp_path $TMP/nginx/tmp;
  scgi_temp_path $TMP/nginx/tmp;
  server { listen 127.0.0.1:$NPORT; root $TMP/nginx/html; }
}
CONF
lks run --fd --quiet --summary "$TMP/nginx.json" -- nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" &
NJOB=$!
CLEANUP+=("kill -QUIT \$(cat $TMP/nginx/nginx.pid)" "kill $NJOB")
for _ in $(seq 100); do curl -s "http://127.0.0.1:$NPORT/" >/dev/null && break; sleep 0.1; done
for _ in $(seq 20); do curl -s "http://127.0.0.1:$NPORT/" >/dev/null; done
workers=$(pgrep -P "$(cat "$TMP/nginx/nginx.pid")" | wc -l)
kill -QUIT "$(cat "$TMP/nginx/nginx.pid")"
wait $NJOB
master=$(jq '[.processes[] | select(.forked_from == 0)][0].pid' "$TMP/nginx.json")
check "nginx: 2 workers, forked from the master" "2 2" \
  "$workers $(jq "[.processes[] | select(.forked_from == $master)] | length" "$TMP/nginx.json")"
check "nginx: no pipe or socketpair channel is a leak" 0 \
  "$(jq '[.leaks[] | select(.subsystem == "unix" or .subsystem == "pipe")] | length' "$TMP/nginx.json")"
check "nginx: workers have no leak of their own" 0 \
  "$(jq "[.leaks[] | select(.pid != $master)] | length" "$TMP/nginx.json")"

finish
