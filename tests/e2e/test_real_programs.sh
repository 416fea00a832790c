#!/usr/bin/env bash
# Real programs under libfdtrack.so behave exactly as without it (same output
# and exit status), and what the shim counts is consistent: real servers'
# sockets are classified by port, nothing goes stale.
# Needs: LEAKSCOPE, FDTRACK (the shim), redis-server, nginx, curl, git, python3.
. "$(dirname "$0")/lib.sh"
S="$TMP/summary.json"

# same NAME CMD...: output and status identical with and without the shim.
same() {
  local name=$1
  shift
  local plain traced ps ts
  plain=$(isolated "$@" 2>&1); ps=$?
  traced=$(LD_PRELOAD="$FDTRACK" isolated "$@" 2>&1); ts=$?
  if [ "$plain" = "$traced" ] && [ "$ps" = "$ts" ]; then
    ok "$name: same output and status ($ps)"
  else
    not_ok "$name: differs under the shim (status $ps vs $ts)"
    diff <(echo "$plain") <(echo "$traced") | head -10
  fi
}

mkdir -p "$LEAKSCOPE_DIR" && chmod 700 "$LEAKSCOPE_DIR"
same "bash" bash -c 'for i in 1 2 3; do echo $i | cat; done; ls /etc/hostname; exec 5>/dev/null; echo done'
same "python3" python3 -c 'import json,os,subprocess,tempfile
d=tempfile.mkdtemp(); open(d+"/x","w").write("hi")
print(json.dumps(sorted(os.listdir(d))), subprocess.run(["echo","sub"],capture_output=True).stdout)'
same "git" bash -c "cd \$(mktemp -d $TMP/git-XXXXXX) && git init -q repo && cd repo && echo a>f && git add f && git -c user.email=a@b -c user.name=n commit -qm m && git log --format=%s"
same "exit status" bash -c 'exit 3'

# nginx serving a page, fetched by curl, both under the shim.
NPORT=$(free_port)
mkdir -p "$TMP/nginx/html" "$TMP/nginx/logs"
echo "hello from nginx" >"$TMP/nginx/html/index.html"
cat >"$TMP/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
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
printf 'web port %s\n' "$NPORT" >"$TMP/nginx.rules"
isolated "$LEAKSCOPE" run --quiet --keep --rules "$TMP/nginx.rules" --summary "$TMP/nginx.json" -- \
  nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" &
NGINX_RUN=$!
CLEANUP+=("kill $NGINX_RUN")
for _ in $(seq 50); do curl -s "http://127.0.0.1:$NPORT/" >/dev/null && break; sleep 0.1; done
same "curl against nginx" curl -s "http://127.0.0.1:$NPORT/index.html"
for _ in $(seq 20); do curl -s "http://127.0.0.1:$NPORT/" >/dev/null; done
kill -QUIT "$(cat "$TMP/nginx/nginx.pid")"
wait $NGINX_RUN
check "nginx exits cleanly under leakscope run" 0 "$?"
check "nginx master's listener is in its port's subsystem" 1 \
  "$(jq '[.processes[] | select(.comm == "nginx") | .fd.by_subsystem.web.opened // 0] | min >= 1 | if . then 1 else 0 end' "$TMP/nginx.json")"
check "nginx worker accepted connections as 'web'" 1 \
  "$(jq '[.processes[] | .fd.by_subsystem.web.opened // 0] | max >= 22 | if . then 1 else 0 end' "$TMP/nginx.json")"
check "nginx: nothing stale" 0 "$(jq '[.processes[].fd.stale] | add' "$TMP/nginx.json")"
check "nginx log files classified as log" 1 \
  "$(jq '[.processes[] | .fd.by_subsystem.log.open // 0] | max >= 2 | if . then 1 else 0 end' "$TMP/nginx.json")"

# redis-server under the shim, with clients that leak connections.
RPORT=$(free_port)
printf 'redis port %s\n' "$RPORT" >"$TMP/redis.rules"
isolated "$LEAKSCOPE" run --quiet --rules "$TMP/redis.rules" --summary "$TMP/redis.json" -- \
  redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no >"$TMP/redis.log" &
REDIS_RUN=$!
CLEANUP+=("kill $REDIS_RUN")
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
same "redis-cli against redis-server" redis-cli -p "$RPORT" ping
/usr/bin/python3 - "$RPORT" "$TMP/held" <<'PY' &
import socket, sys, time
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(7)]
open(sys.argv[2], "w").close()
time.sleep(30)
PY
HOLD=$!
CLEANUP+=("kill $HOLD")
# Shut down only once all 7 are connected and redis has accepted them (a loaded
# machine can take seconds to start the client).
for _ in $(seq 300); do [ -e "$TMP/held" ] && break; sleep 0.1; done
for _ in $(seq 100); do
  [ "$(redis-cli -p "$RPORT" info clients | tr -d '\r' | sed -n 's/^connected_clients://p')" -ge 8 ] 2>/dev/null && break
  sleep 0.1
done
redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
wait $REDIS_RUN
kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null
check "redis-server: the 7 held client connections are open in 'redis' at exit" 8 \
  "$(jq '.processes[0].fd.by_subsystem.redis.open' "$TMP/redis.json")"
check "redis-server: nothing stale" 0 "$(jq '.processes[0].fd.stale' "$TMP/redis.json")"
same "redis-server --version" redis-server --version
finish
