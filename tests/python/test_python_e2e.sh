#!/bin/bash
# test_python_e2e.sh - Debian's python3 and python3-redis against a private
# redis-server, under `leakscope run` with the default allocator: a redis
# pool that grows, pages retained in a list, forked parsers, threads. Each
# leak must be named by its Python function, file and line and classified by
# pyfile/pyfunc rules (user's and defaults); a clean run raises no leak.
set -u
: "${LEAKSCOPE:?}" "${PYDIR:?}"
TMP=$(mktemp -d /tmp/lks-py-XXXXXX)
chmod 700 "$TMP"
PIDS=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
fail=0
app=$PYDIR/leaky_app.py

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

cat >"$TMP/rules" <<'RULES'
parsers pyfunc Parser.*
pages   pyfunc read_page
RULES

# run_app MODE: runs the app under leakscope, snapshots it live with
# `leakscope show --json`, records what /proc says, stops it, checks.
run_app() {
    local mode=$1 dir=$TMP/$1
    mkdir -m 700 "$dir"
    LEAKSCOPE_DIR=$dir/seg "$LEAKSCOPE" run --quiet --rules "$TMP/rules" --summary "$dir/summary.json" \
        -- /usr/bin/python3 "$app" "$port" "$dir/ready" "$mode" >"$dir/run.log" 2>&1 &
    local run=$!
    PIDS+=($run)
    for _ in $(seq 600); do [ -f "$dir/ready" ] && break; sleep 0.1; done
    if [ ! -f "$dir/ready" ]; then
        echo "FAIL - $mode: the app did not get ready"; cat "$dir/run.log"; fail=1; return
    fi
    read -r main c1 c2 <"$dir/ready"
    # The heap view is published by each process's aggregator thread once a
    # second: on a loaded machine it can trail the program by seconds.
    for _ in $(seq 60); do
        LEAKSCOPE_DIR=$dir/seg "$LEAKSCOPE" show --json "$main" "$c1" "$c2" >"$dir/show.json"
        /usr/bin/python3 "$PYDIR/check_app.py" --settled "$dir/show.json" "$mode" && break
        sleep 0.5
    done
    local sockets pipes1 pipes2
    sockets=$(find /proc/"$main"/fd -lname 'socket:*' 2>/dev/null | wc -l)
    pipes1=$(find /proc/"$c1"/fd -lname 'pipe:*' 2>/dev/null | wc -l)
    pipes2=$(find /proc/"$c2"/fd -lname 'pipe:*' 2>/dev/null | wc -l)
    printf '{"pids": [%s, %s, %s], "sockets": %s, "pipes": {"%s": %s, "%s": %s}}\n' \
        "$main" "$c1" "$c2" "$sockets" "$c1" "$pipes1" "$c2" "$pipes2" >"$dir/kernel.json"
    kill "$main"
    wait "$run"
    /usr/bin/python3 "$PYDIR/check_app.py" "$app" "$mode" "$dir/show.json" "$dir/summary.json" \
        "$dir/kernel.json" || { fail=1; echo "--- run log:"; tail -20 "$dir/run.log"; }
}

run_app leak
run_app clean
exit $fail
