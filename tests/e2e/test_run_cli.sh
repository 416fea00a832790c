#!/usr/bin/env bash
# `leakscope run` end to end: the summary JSON names the injected leaks with
# subsystem and call site, the exit status passes through, a clean program
# raises no leak, and bad input is refused clearly without losing anything.
# Needs: LEAKSCOPE (the CLI), FDPROBE, LEAKY_FDS.
. "$(dirname "$0")/lib.sh"
S="$TMP/summary.json"

# The bundled example: frontier files leak from frontier_append, pool sockets
# from queue_pool_connect.
out=$(lks run --fd --summary "$S" -- "$LEAKY_FDS" 200 2>"$TMP/err")
check "example runs and prints its own output" "leaky_fds: 200 jobs, 20 failed" "$out"
pid=$(jq '.processes[] | select(.comm=="leaky_fds") | .pid' "$S")
P=".processes[] | select(.pid==$pid) | .fd"
check "frontier open at exit" 20 "$(jq "$P.by_subsystem.frontier.open" "$S")"
check "frontier opened" 200 "$(jq "$P.by_subsystem.frontier.opened" "$S")"
check "frontier closed" 180 "$(jq "$P.by_subsystem.frontier.closed" "$S")"
check "frontier site is frontier_append" 20 \
  "$(jq "[$P.sites[] | select(.subsystem==\"frontier\" and (.frames[0] | contains(\"frontier_append\")))] | .[0].open" "$S")"
check "pool site is queue_pool_connect" 10 \
  "$(jq "[$P.sites[] | select(.frames[0] | contains(\"queue_pool_connect\"))] | .[0].open" "$S")"
check "pipes all closed" "400 400" "$(jq -r "$P.by_subsystem.pipe | \"\\(.opened) \\(.closed)\"" "$S")"
check_true "human summary names the call site" grep -q "frontier_append (leaky_fds.c" "$TMP/err"
check "held at exit: exactly the two injected leaks" "frontier:20:frontier_append,socket:10:queue_pool_connect" \
  "$(jq -r '[.leaks[] | "\(.subsystem):\(.open):\(.site | split(" ")[0])"] | join(",")' "$S")"
check_true "held-at-exit line in the text (a fact, not a verdict)" grep -q "^  20 frontier descriptors in pid $pid (leaky_fds), opened at frontier_append" "$TMP/err"
check_true "a run of a fraction of a second gives no growth verdict" grep -q "^none: [0-9]* s of series, growth needs at least 10 s" "$TMP/err"
check "the summary's growth verdicts are empty" 0 "$(jq '.verdicts | length' "$S")"
check "segments of exited processes removed" 0 "$(ls "$LEAKSCOPE_DIR" | wc -l)"

# A clean run: nothing open but stdio, no failure, no site holding descriptors.
lks run --fd --summary "$S" -- "$FDPROBE" clean >/dev/null 2>&1
check "clean run: only stdio stays open" "stdio" \
  "$(jq -r '[.processes[] | select(.comm=="fdprobe") | .fd.by_subsystem | to_entries[] | select(.value.open > 0) | .key] | join(",")' "$S")"
check "clean run: no leak in the verdict" 0 "$(jq '.leaks | length' "$S")"
check "clean run: no call site holds a descriptor" 0 \
  "$(jq '[.processes[] | select(.comm=="fdprobe") | .fd.sites[] | select(.open > 0)] | length' "$S")"
check "clean run: no failures" 0 "$(jq '[.processes[] | select(.comm=="fdprobe") | .fd.open_failed[]] | length' "$S")"
check "clean run: every kind was opened and closed" 300 \
  "$(jq '[.processes[] | select(.comm=="fdprobe") | .fd.by_subsystem | to_entries[] | select(.key != "stdio") | .value.closed] | add' "$S")"

# Exit status passes through, signals as 128+N.
lks run --quiet -- "$FDPROBE" exit7
check "exit status passes through" 7 "$?"
lks run --quiet -- bash -c 'kill -TERM $$'
check "killed by SIGTERM gives 143" 143 "$?"
lks run --quiet -- /nonexistent/program 2>"$TMP/err"
check "missing program gives 127" 127 "$?"

# EMFILE storm: failures per subsystem and errno in the JSON.
lks run --quiet --summary "$S" -- "$FDPROBE" emfile >/dev/null
check "EMFILE failures counted" 50 "$(jq '.processes[0].fd.open_failed.file.EMFILE' "$S")"
check "rlimit recorded" 64 "$(jq '.processes[0].fd.rlimit_nofile' "$S")"

# Ages: how long the descriptors still open at exit had been open.
lks run --quiet --summary "$S" -- "$FDPROBE" age
check "frontier files 1.5 s old at exit" 1 \
  "$(jq '.processes[0].fd.by_subsystem.frontier.oldest_open_age_s | (. >= 1.4 and . < 3) | if . then 1 else 0 end' "$S")"
check "pipes just opened" 1 \
  "$(jq '.processes[0].fd.by_subsystem.pipe.oldest_open_age_s | (. >= 0 and . < 0.5) | if . then 1 else 0 end' "$S")"
check "site age matches" 1 \
  "$(jq '[.processes[0].fd.sites[] | select(.subsystem=="frontier")][0].oldest_open_age_s >= 1.4 | if . then 1 else 0 end' "$S")"

# Other commands see a process started by `leakscope run`, live, without flags.
mkfifo "$TMP/hold"
lks run --quiet -- "$FDPROBE" hold <"$TMP/hold" >"$TMP/hold.out" &
RUN=$!
exec 9>"$TMP/hold"
for _ in $(seq 50); do grep -q ready "$TMP/hold.out" 2>/dev/null && break; sleep 0.1; done
hp=$(awk '/ready/ {print $2}' "$TMP/hold.out")
lks show --json "$hp" >"$TMP/show.json"
check "show: live frontier descriptors" 4 "$(jq '.processes[0].fd.by_subsystem.frontier.open' "$TMP/show.json")"
check "show: reconciled with /proc now, nothing unattributed" 0 "$(jq '.processes[0].fd.unattributed_now' "$TMP/show.json")"
check "show: kernel count is /proc/PID/fd" "$(ls /proc/$hp/fd | wc -l)" "$(jq '.processes[0].fd.kernel_open' "$TMP/show.json")"
check_true "ls lists it as running" grep -q "^ *$hp .*running" <(lks ls)
lks show "$hp" | grep -q "frontier_leak_files"
check "show: text names the call site" 0 "$?"
exec 9>&-
wait $RUN
lks show 999999 2>"$TMP/err"
check "show: untraced pid exits 1" 1 "$?"
check_true "show: says not traced" grep -q "not traced" "$TMP/err"
lks show abc 2>/dev/null
check "show: bad pid exits 2" 2 "$?"

# Bad input.
lks run 2>"$TMP/err"
check "no command: exit 2" 2 "$?"
check_true "no command: says so" grep -q "no command" "$TMP/err"
lks run --bogus -- true 2>"$TMP/err"
check "unknown option: exit 2" 2 "$?"
lks run --summary /nonexistent/dir/s.json -- true 2>"$TMP/err"
check "unwritable summary refused before running" 2 "$?"
printf 'redis port 6379\nhttp bogus 80\n' >"$TMP/bad.rules"
lks run --quiet --rules "$TMP/bad.rules" --summary "$S" -- "$FDPROBE" basic >/dev/null 2>"$TMP/err"
check "bad rules: program still runs" 0 "$?"
check_true "bad rules: file:line on stderr" grep -q "bad.rules:2:" "$TMP/err"
check "bad rules: defaults used" 5 "$(jq '.processes[0].fd.by_subsystem.frontier.open' "$S")"
check "bad rules: said once" 1 "$(grep -c "bad.rules" "$TMP/err")"
lks frobnicate 2>/dev/null
check "unknown command: exit 2" 2 "$?"

# Readers refuse corrupt segments and carry on.
mkdir -p "$LEAKSCOPE_DIR" && chmod 700 "$LEAKSCOPE_DIR"
head -c 100 /dev/urandom >"$LEAKSCOPE_DIR/999999.seg"
printf 'LKSSEG' >"$LEAKSCOPE_DIR/999998.seg"
lks ls >"$TMP/ls" 2>"$TMP/err"
check "ls survives corrupt segments" 0 "$?"
check "ls reports both corrupt files" 2 "$(grep -c "skipping" "$TMP/err")"
chmod 755 "$LEAKSCOPE_DIR"
lks run --quiet -- true 2>"$TMP/err"
check "shared segment directory refused" 2 "$?"
check_true "and says why" grep -q "0700" "$TMP/err"
finish
