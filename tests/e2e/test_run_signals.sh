#!/usr/bin/env bash
# `leakscope run` stopped by a signal: SIGTERM or SIGINT sent to the run goes
# to the traced program, and the run ends as usual (the program's status,
# the summary, its temporary recording removed); ^C from a terminal reaches
# the program once, not twice. A run killed outright (SIGKILL) leaves its
# recorder to end by itself and its temporary recording to the next `run` or
# `ls`, which remove it once the run is gone and the grace period is over,
# and never a live run's (docs/RECORDING.md).
# Needs: LEAKSCOPE, /usr/bin/python3, jq.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/series_lib.sh"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)

# gone PID: the process has ended (a zombie nobody reaps counts as ended).
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
# recorder_of RUN: "PID DIR" of the run's recorder (its child holding
# .../run.db open) and of its temporary recording.
recorder_of() {
  local c f
  for c in $(pgrep -P "$1"); do
    for f in /proc/"$c"/fd/*; do
      f=$(readlink "$f" 2>/dev/null) || continue
      case $f in /tmp/leakscope-run-*/run.db) echo "$c ${f%/run.db}"; return 0 ;; esac
    done
  done
  return 1
}
# start W ARGS...: `leakscope run ARGS -- stop_me.py W` in the background,
# its SIGINT and SIGQUIT at their defaults (a background job of a script
# ignores them, and so would the run). Waits until the program is ready and
# the recorder has its file; sets JOB (the shell's job, to wait for), RUN
# (leakscope, the program's parent), REC and TMPD.
start() {
  local w=$1
  shift
  isolated "$PY" -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGQUIT): signal.signal(s, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$LEAKSCOPE" run "$@" -- "$PY" "$HERE/stop_me.py" "$w" 2>"$w.err" &
  JOB=$!
  CLEANUP+=("kill -TERM \$(cat $w.pid)")
  wait_for 60 test -s "$w.pid" || not_ok "the program started ($w)"
  RUN=$(awk '{print $4}' "/proc/$(cat "$w.pid")/stat")
  CLEANUP+=("kill -KILL $RUN")
  local r
  wait_for 30 recorder_of "$RUN" >/dev/null || not_ok "the recorder started ($w)"
  r=$(recorder_of "$RUN")
  REC=${r%% *} TMPD=${r#* }
}
# ended W: waits up to 15 s for the run to end; ENDED is its status, or
# "running" after its program is stopped (so that a run that does not pass
# the signal on is a failure, not a hang).
ended() {
  if wait_for 15 gone "$RUN"; then
    wait "$JOB"
    ENDED=$?
  else
    ENDED=running
    kill -TERM "$(cat "$1.pid")" 2>/dev/null
    wait "$JOB"
  fi
}

# 1. SIGTERM sent to the run (a supervisor, `timeout`, `kill`).
W="$TMP/term"
start "$W" --summary "$W.json"
kill -TERM "$RUN"
ended "$W"
check "SIGTERM: the run ends with the program's status" 143 "$ENDED"
check "SIGTERM: passed on to the program, once" "SIGTERM 1" "$(cat "$W" 2>/dev/null)"
check_true "SIGTERM: the summary is printed" grep -q "^leakscope: 1 process traced" "$W.err"
check "SIGTERM: --summary written with the status" 143 "$(jq .exit_status "$W.json" 2>/dev/null)"
check_true "SIGTERM: the temporary recording is removed ($TMPD)" test -n "$TMPD" -a ! -e "$TMPD"
check_true "SIGTERM: the recorder has ended" gone "$REC"

# 2. SIGINT sent to the run alone (not from a terminal).
W="$TMP/int"
start "$W" --quiet
kill -INT "$RUN"
ended "$W"
check "SIGINT: the run ends with the program's status" 130 "$ENDED"
check "SIGINT: passed on to the program, once" "SIGINT 1" "$(cat "$W" 2>/dev/null)"
check_true "SIGINT: the temporary recording is removed ($TMPD)" test -n "$TMPD" -a ! -e "$TMPD"
check_true "SIGINT: the recorder has ended" gone "$REC"

# 3. ^C typed at a terminal: the kernel sends it to the whole foreground
# process group; the program has it already and must not get it twice.
W="$TMP/tty"
status=$(isolated "$PY" - "$W" "$LEAKSCOPE" run --quiet -- "$PY" "$HERE/stop_me.py" "$W" <<'EOF'
import os, pty, signal, sys, time
w, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(argv[0], argv)
deadline = time.time() + 60
while not (os.path.exists(w + ".pid") and os.path.getsize(w + ".pid")) and time.time() < deadline:
    time.sleep(0.1)
time.sleep(0.3)
os.write(fd, b"\x03")
while True:
    try:
        if not os.read(fd, 4096):
            break
    except OSError:
        break
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
EOF
)
check "terminal ^C: the run ends with the program's status" 130 "$status"
check "terminal ^C: the program got it once" "SIGINT 1" "$(cat "$W" 2>/dev/null)"

# 4. SIGKILL: nothing runs in the run any more; its recorder ends by itself.
W="$TMP/kill"
start "$W" --quiet
kill -KILL "$RUN"
wait "$JOB" 2>/dev/null
check_true "SIGKILL: the recorder ends by itself" wait_for 15 gone "$REC"
kill -TERM "$(cat "$W.pid")"
check_true "SIGKILL: the temporary recording is left ($TMPD)" test -n "$TMPD" -a -d "$TMPD"
LEAKSCOPE_SEGMENT_GRACE=300 lks ls >/dev/null
check_true "SIGKILL: ls keeps it within the grace period" test -d "$TMPD"
touch "$TMPD/notes.txt"
LEAKSCOPE_SEGMENT_GRACE=0 lks ls >/dev/null
check_true "SIGKILL: ls keeps it while it holds a file not ours" test -d "$TMPD"
rm -f "$TMPD/notes.txt"
LEAKSCOPE_SEGMENT_GRACE=0 lks ls >/dev/null
check_true "SIGKILL: a later ls removes it" test ! -e "$TMPD"

# ... and a later run removes it, but not a live run's.
W="$TMP/kill2"
start "$W" --quiet
KILLED=$TMPD
kill -KILL "$RUN"
wait "$JOB" 2>/dev/null
wait_for 15 gone "$REC"
kill -TERM "$(cat "$W.pid")"
W="$TMP/live"
start "$W" --quiet
LEAKSCOPE_SEGMENT_GRACE=0 lks run --quiet -- /bin/true
check_true "SIGKILL: a later run removes it" test ! -e "$KILLED"
check_true "a live run's recording stays" test -d "$TMPD"
LEAKSCOPE_SEGMENT_GRACE=0 lks ls >/dev/null
check_true "a live run's recording stays (ls)" test -d "$TMPD"
kill -TERM "$RUN"
ended "$W"
check "the live run ends normally" 143 "$ENDED"
check_true "the live run removed its own" test ! -e "$TMPD"
finish
