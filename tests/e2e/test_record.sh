#!/usr/bin/env bash
# `leakscope record` and `run --record` end to end: a Python program leaking
# .log files is read back from the SQLite recording (growth over ticks, the
# leaking site, start/exit events, final state); the recording is readable
# while written and after `kill -9` of the recorder (whole ticks only), and
# can be appended to; bad input (unwritable --out, corrupt or foreign
# database) is refused with a clear error and a non-zero exit.
# Needs: LEAKSCOPE, sqlite3, /usr/bin/python3.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/series_lib.sh"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
q() { sqlite3 -batch "$@"; }

# 1. run --record: the whole life of a leaking program.
W="$TMP/w1"
mkdir -p "$W"
touch "$W/go"
DB="$TMP/run.db"
isolated "$LEAKSCOPE" run --fd --quiet --record "$DB" -- "$PY" "$HERE/leaker.py" "$W" 15 &
RUN_PID=$!
CLEANUP+=("touch $W/stop; wait $RUN_PID")
wait_for 60 test -e "$W/leaked" || not_ok "leaker leaked"
# Hold the leak for two 1 s ticks, then let it exit.
sleep 2.5
touch "$W/stop"
wait "$RUN_PID"
check "run --record: command's exit status" 0 "$?"
pid=$(cat "$W/pid")
P="(SELECT id FROM process WHERE pid=$pid)"
check "file is 0600" 600 "$(stat -c %a "$DB")"
check "WAL mode" wal "$(q "$DB" 'PRAGMA journal_mode')"
check "one process row, python3, preload, with an exit time" "python3|preload|1" \
  "$(q "$DB" "SELECT comm, producer, exit_time IS NOT NULL FROM process WHERE pid=$pid")"
check "start and exit events" "start,exit" \
  "$(q "$DB" "SELECT group_concat(kind) FROM (SELECT kind FROM event WHERE process=$P ORDER BY tick, kind DESC)")"
check "log peaked at base + 15 leaked" 16 "$(q "$DB" "SELECT max(fds_open) FROM subsys_sample WHERE process=$P AND subsystem='log'")"
check "a tick saw the leak in progress or before it (a series, not a snapshot)" 1 \
  "$(q "$DB" "SELECT count(*) >= 2 FROM subsys_sample WHERE process=$P AND subsystem='log'")"
check "final tick: the interpreter closed them at exit" "0|16" \
  "$(q "$DB" "SELECT fds_open, fds_closed FROM subsys_sample WHERE process=$P AND subsystem='log' ORDER BY tick DESC LIMIT 1")"
# The site is the program's own Python line (leaker.py:16), the base log's
# open() is another line: the leaking site holds the 15 at the peak.
check "the leaking site: leaker.py's open() line, holding 15 at the peak" 15 \
  "$(q "$DB" "SELECT max(n) FROM (SELECT sum(ss.fds_open) AS n FROM site s JOIN site_sample ss ON ss.site=s.id WHERE s.process=$P AND s.subsystem='log' AND s.headline LIKE '%leaker.py:16)%' GROUP BY ss.tick)")"
check "site frames stored" 1 "$(q "$DB" "SELECT min(length(frames) > 0) FROM site WHERE process=$P")"
check "meta: schema and command" "1|$PY $HERE/leaker.py $W 15" \
  "$(q "$DB" "SELECT (SELECT value FROM meta WHERE key='schema_version'), (SELECT value FROM meta WHERE key='command')")"
check "segments removed after the run" 0 "$(ls "$LEAKSCOPE_DIR" | wc -l)"

# 2. record a running program, read it while written, kill -9 the recorder.
W="$TMP/w2"
mkdir -p "$W"
touch "$W/go"
isolated "$LEAKSCOPE" run --fd --quiet --keep -- "$PY" "$HERE/leaker.py" "$W" 20 &
RUN_PID=$!
CLEANUP+=("touch $W/stop; wait $RUN_PID")
wait_for 30 test -s "$W/pid" || not_ok "leaker started"
pid=$(cat "$W/pid")
DB="$TMP/rec.db"
(exec "$LEAKSCOPE" record --out "$DB" --interval 0.2 --pid "$pid" 2>"$TMP/rec.err") &
REC=$!
CLEANUP+=("kill -9 $REC")
ticks() { q "$DB" 'SELECT count(*) FROM tick' 2>/dev/null || echo 0; }
five() { [ "$(ticks)" -ge 5 ]; }
check_true "readable while written: 5 ticks seen by another reader" wait_for 60 five
seen=$(ticks)
kill -9 "$REC"
wait "$REC" 2>/dev/null
check "after kill -9: integrity_check" ok "$(q "$DB" 'PRAGMA integrity_check')"
after=$(ticks)
check_true "after kill -9: every tick seen before is still there ($seen <= $after)" test "$seen" -le "$after"
check "after kill -9: no half-written tick" 0 \
  "$(q "$DB" 'SELECT count(*) FROM tick WHERE id NOT IN (SELECT tick FROM proc_sample)')"
check "only the --pid process" "$pid" "$(q "$DB" 'SELECT group_concat(pid) FROM process')"
# Append after the crash: same process row, ticks continue.
"$LEAKSCOPE" record --out "$DB" --interval 0.2 --duration 0.5 --pid "$pid" 2>"$TMP/rec.err"
check "append: exit 0" 0 "$?"
check "append: ticks continue" 1 "$(q "$DB" "SELECT count(*) > $after FROM tick")"
check "append: the process keeps its row" 1 "$(q "$DB" "SELECT count(*) FROM process WHERE pid=$pid")"
touch "$W/stop"
wait "$RUN_PID"
"$LEAKSCOPE" record --out "$DB" --duration 0 --pid "$pid" 2>"$TMP/rec.err"
check "exit recorded once the process is gone" 1 \
  "$(q "$DB" "SELECT count(*) FROM event WHERE kind='exit' AND process=(SELECT id FROM process WHERE pid=$pid)")"

# 3. Bad input: clear error, non-zero exit, nothing touched.
touch "$TMP/afile"
"$LEAKSCOPE" record --out "$TMP/afile/x.db" --duration 0 2>"$TMP/err"
check "unwritable --out: exit 2" 2 "$?"
check_true "unwritable --out: says why" grep -q "cannot write $TMP/afile/x.db: Not a directory" "$TMP/err"
"$LEAKSCOPE" record --out "$TMP" --duration 0 2>"$TMP/err"
check "directory as --out: exit 2" 2 "$?"
check_true "directory as --out: says why" grep -q "Is a directory" "$TMP/err"
head -c 8192 /dev/urandom >"$TMP/corrupt.db"
sum=$(md5sum <"$TMP/corrupt.db")
"$LEAKSCOPE" record --out "$TMP/corrupt.db" --duration 0 2>"$TMP/err"
check "corrupt database: exit 2" 2 "$?"
check_true "corrupt database: says so" grep -q "file is not a database" "$TMP/err"
check "corrupt database: left as it was" "$sum" "$(md5sum <"$TMP/corrupt.db")"
q "$TMP/other.db" 'CREATE TABLE accounts (id INTEGER); INSERT INTO accounts VALUES (1);'
"$LEAKSCOPE" record --out "$TMP/other.db" --duration 0 2>"$TMP/err"
check "foreign database: exit 2" 2 "$?"
check_true "foreign database: says so" grep -q "not a leakscope recording" "$TMP/err"
check "foreign database: untouched" "accounts" "$(q "$TMP/other.db" "SELECT group_concat(name) FROM sqlite_master")"
lks run --quiet --record "$TMP/corrupt.db" -- touch "$TMP/ran" 2>"$TMP/err"
check "run --record to a corrupt database: exit 2" 2 "$?"
check_true "run --record refuses before running the command" test ! -e "$TMP/ran"
"$LEAKSCOPE" record --duration 1 2>"$TMP/err"
check "record without --out: exit 2" 2 "$?"
"$LEAKSCOPE" record --out "$TMP/x.db" --interval 0 2>"$TMP/err"
check "record --interval 0: exit 2" 2 "$?"
finish
