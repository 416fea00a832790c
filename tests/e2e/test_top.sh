#!/usr/bin/env bash
# `leakscope top` on real traced programs (Debian's python3 under the shims):
# one leaks a file descriptor every 0.1 s, one only churns. Plain mode (stdout
# not a terminal) must put the leaking process first with an fd-growth
# verdict on its file subsystem and leave the clean one without; on a
# terminal (tmux) it must redraw in place and quit on q. Needs: LEAKSCOPE.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

lks run --quiet -- /usr/bin/python3 "$HERE/growing.py" fd-leak 40 "$TMP/leak.pid" &
CLEANUP+=("kill $!")
lks run --quiet -- /usr/bin/python3 "$HERE/growing.py" clean 40 "$TMP/clean.pid" &
CLEANUP+=("kill $!")
for _ in $(seq 100); do [ -s "$TMP/leak.pid" ] && [ -s "$TMP/clean.pid" ] && break; sleep 0.1; done
[ -s "$TMP/leak.pid" ] && [ -s "$TMP/clean.pid" ] || { not_ok "the traced programs started"; finish; exit 1; }
LEAK=$(cat "$TMP/leak.pid")
CLEAN=$(cat "$TMP/clean.pid")
CLEANUP+=("kill $LEAK $CLEAN")

lks top --iterations 16 --interval 1 >"$TMP/plain.txt"
check "plain top exits 0" 0 "$?"
check "plain mode: no escape sequences" 0 "$(grep -c $'\033' "$TMP/plain.txt")"
check "plain mode: a block per round" 16 "$(grep -c '^leakscope top ' "$TMP/plain.txt")"
last=$(awk '/^leakscope top /{block=""} {block = block $0 "\n"} END {printf "%s", block}' "$TMP/plain.txt")
first_row=$(sed -n 3p <<<"$last")
check "the leaking process's files come first" "$LEAK file" "$(awk '{print $1, $3}' <<<"$first_row")"
check "it carries the fd-growth verdict" fd-growth "$(awk '{print $NF}' <<<"$first_row")"
check_true "the verdict line names it" grep -qE "^fd-growth: python3 \(pid $LEAK\): file descriptors \+[0-9.]+/min" <<<"$last"
check_true "the clean process is shown" grep -qE "^ *$CLEAN python3 +file " <<<"$last"
check "the clean process has no verdict" 0 "$(grep -cE "^ *$CLEAN .*(growth|heap|emfile)\$" <<<"$last")"
check "no verdict names the clean process" 0 "$(grep -c "pid $CLEAN)" <<<"$last")"
# Evidence for a failure seen once in a loaded full run (not reproduced in
# six runs under two CPU hogs): the last two rounds as top printed them.
[ "$FAILED" -eq 0 ] || { echo "--- last rounds of plain top:"; tail -40 "$TMP/plain.txt"; }

# On a terminal: in place, and q quits.
if command -v tmux >/dev/null; then
  SOCK="$TMP/tmux.sock"
  tmux -S "$SOCK" new-session -d -x 150 -y 40 \
    "LEAKSCOPE_DIR='$LEAKSCOPE_DIR' '$LEAKSCOPE' top --interval 0.5; echo TOP-EXITED \$?; sleep 30"
  CLEANUP+=("tmux -S '$SOCK' kill-server")
  # The first round symbolizes every site: slow on a loaded machine.
  for _ in $(seq 300); do
    tmux -S "$SOCK" capture-pane -p >"$TMP/screen1.txt"
    grep -q "^ *$LEAK python3 " "$TMP/screen1.txt" && break
    sleep 0.1
  done
  sleep 1.5
  tmux -S "$SOCK" capture-pane -p >"$TMP/screen1.txt"
  check "terminal: one header on screen (redrawn in place)" 1 "$(grep -c '^leakscope top ' "$TMP/screen1.txt")"
  check_true "terminal: the leaking process is on screen" grep -q "^ *$LEAK python3 " "$TMP/screen1.txt"
  check_true "terminal: offers q" grep -q "press q to quit" "$TMP/screen1.txt"
  tmux -S "$SOCK" send-keys q
  for _ in $(seq 100); do
    tmux -S "$SOCK" capture-pane -p | grep -q TOP-EXITED && break
    sleep 0.1
  done
  check "terminal: q quits with status 0" "TOP-EXITED 0" "$(tmux -S "$SOCK" capture-pane -p | grep -o 'TOP-EXITED [0-9]*')"
else
  not_ok "tmux is not installed (scripts/deps.sh installs it)"
fi

lks top --interval 0 2>/dev/null
check "bad --interval: exit 2" 2 "$?"
lks top --dir "$TMP/nonexistent" --iterations 1 >"$TMP/none.txt"
check "directory not created yet: nothing traced, exit 0" "0 1" \
  "$? $(grep -c "no traced process in $TMP/nonexistent" "$TMP/none.txt")"
finish
