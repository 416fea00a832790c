#!/usr/bin/env bash
# leakscope_sockets_idle: a traced Python program holds N connections to an
# (untraced) echo server, M of them silent; serve must export exactly M idle
# sockets in the connections' subsystem, which is also what the kernel says
# (ss: lastsnd/lastrcv). Needs: LEAKSCOPE, curl, ss, /usr/bin/python3.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/series_lib.sh"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
W="$TMP/work"
mkdir -p "$W"
N=7
M=4

(exec "$PY" "$HERE/echo_server.py" "$W/port") &
CLEANUP+=("kill $!")
wait_for 30 test -s "$W/port" || not_ok "echo server started"
PORT=$(cat "$W/port")
printf 'pool port %s\n' "$PORT" >"$W/rules"

isolated "$LEAKSCOPE" run --fd --quiet --rules "$W/rules" -- "$PY" "$HERE/idle_client.py" "$PORT" $N $M "$W" &
RUN_PID=$!
CLEANUP+=("touch $W/stop; wait $RUN_PID")
wait_for 30 test -e "$W/ready" || not_ok "client connected"

start_serve --dir "$LEAKSCOPE_DIR" --idle-after 2 || { not_ok "serve starts"; finish; exit 1; }
idle_is_m() { [ "$(metric leakscope_sockets_idle 'subsystem="pool"')" = $M ]; }
if wait_for 30 idle_is_m; then ok "sockets_idle{subsystem=pool} = $M"; else
  not_ok "sockets_idle: $(scrape | grep 'sockets_idle.*pool')"; fi
check "fds_open{subsystem=pool} = $N" $N "$(metric leakscope_fds_open 'subsystem="pool"')"
# Ground truth from the kernel: client-side sockets to PORT idle >= 2 s.
kernel=$(ss -tniH state established "( dport = :$PORT )" | awk '
  /lastsnd:/ { s = r = 0
    for (i = 1; i <= NF; i++) { if ($i ~ /^lastsnd:/) s = substr($i, 9) + 0; if ($i ~ /^lastrcv:/) r = substr($i, 9) + 0 }
    if (s >= 2000 && r >= 2000) n++ } END { print n + 0 }')
check "the kernel (ss) agrees: $M idle" $M "$kernel"
sleep 1
check "still $M a scrape later (busy ones never idle)" $M "$(metric leakscope_sockets_idle 'subsystem="pool"')"
check "sock_diag answered" 1 "$(metric leakscope_exporter_sock_diag_up)"

# With a long --idle-after nothing is idle yet.
start_serve --dir "$LEAKSCOPE_DIR" --idle-after 3600
check "--idle-after 3600: none idle" 0 "$(metric leakscope_sockets_idle 'subsystem="pool"')"
finish
