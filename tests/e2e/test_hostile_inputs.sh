#!/usr/bin/env bash
# Readers distrust what they read: a segment naming a FIFO as a module, a
# 4 GB sparse segment, segments planted by another user in root's directory,
# a FIFO or /dev/stdin as rules file. Each gets a clear message, nothing hangs
# (every command runs under a timeout), nothing costs gigabytes, and the
# traced program keeps its input.
# Needs: LEAKSCOPE, LEAKY_FDS, FDTRACK; root for the planted-owner cases.
. "$(dirname "$0")/lib.sh"
SEGPATCH="$(dirname "$LEAKSCOPE")/lks-segpatch"
S="$TMP/summary.json"
T=30 # seconds before a command counts as hung

# A real segment to start from: an exited leaky_fds run, kept.
lks run --keep --fd --quiet --summary "$S" -- "$LEAKY_FDS" 20 >/dev/null 2>&1
pid=$(jq '.processes[] | select(.comm=="leaky_fds") | .pid' "$S")
SEG="$LEAKSCOPE_DIR/$pid.seg"
check_true "kept segment exists" test -f "$SEG"

# private_copy NAME: a 0700 directory holding a copy of the segment.
private_copy() {
  mkdir -m 700 "$TMP/$1"
  cp "$SEG" "$TMP/$1/$pid.seg"
}

# rss_kb CMD...: runs CMD (stderr to $TMP/rss.err), prints its exit status
# and its peak RSS in KiB.
rss_kb() {
  /usr/bin/python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as err:
    rc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$TMP/rss.err" "$@"
}

# --- A module path that is a FIFO must not hang `show`.
private_copy fifo
mkfifo "$TMP/module.fifo"
"$SEGPATCH" "$TMP/fifo/$pid.seg" modules "$TMP/module.fifo"
timeout $T "$LEAKSCOPE" show --dir "$TMP/fifo" "$pid" >"$TMP/out" 2>"$TMP/err"
check "FIFO module: show finishes and succeeds" 0 "$?"
check_true "FIFO module: says it is a FIFO" grep -q "module.fifo: is a FIFO, not a regular file" "$TMP/err"
check_true "FIFO module: summary still printed" grep -q "frontier" "$TMP/out"
timeout $T "$LEAKSCOPE" show --json --dir "$TMP/fifo" "$pid" >"$TMP/out" 2>/dev/null
check "FIFO module: show --json finishes" 0 "$?"
check "FIFO module: frames left unsymbolized" 1 \
  "$(jq '[.processes[0].fd.sites[].frames[] | select(contains("module.fifo"))] | length > 0 | if . then 1 else 0 end' "$TMP/out")"

# --- A 4 GB sparse segment: refused from its header, at a cost of KiB.
private_copy huge
"$SEGPATCH" "$TMP/huge/$pid.seg" huge 4294967296
truncate -s 4G "$TMP/huge/$pid.seg"
read -r rc kb < <(rss_kb timeout $T "$LEAKSCOPE" ls --dir "$TMP/huge")
check "huge segment: ls exits 0" 0 "$rc"
check_true "huge segment: ls peak RSS under 64 MB (was $kb KiB)" test "$kb" -lt 65536
check_true "huge segment: refused with the reason" grep -q "heap area of .* exceeds" "$TMP/rss.err"
check "huge segment: not listed" 0 "$(timeout $T "$LEAKSCOPE" ls --dir "$TMP/huge" 2>/dev/null | grep -c "leaky_fds")"
read -r rc kb < <(rss_kb timeout $T "$LEAKSCOPE" show --dir "$TMP/huge" "$pid")
check "huge segment: show exits 1" 1 "$rc"
check_true "huge segment: show peak RSS under 64 MB (was $kb KiB)" test "$kb" -lt 65536
check_true "huge segment: show says it is not traced" grep -q "not traced" "$TMP/rss.err"
# The same file, only stretched: the header no longer matches the file.
private_copy stretched
truncate -s 4G "$TMP/stretched/$pid.seg"
read -r rc kb < <(rss_kb timeout $T "$LEAKSCOPE" show --dir "$TMP/stretched" "$pid")
check "stretched segment: show exits 1" 1 "$rc"
check_true "stretched segment: peak RSS under 64 MB (was $kb KiB)" test "$kb" -lt 65536
check_true "stretched segment: header and file size disagree" grep -q "file has 4294967296" "$TMP/rss.err"

# --- Segments planted by another user, read by root.
if [ "$(id -u)" -eq 0 ]; then
  private_copy planted
  cp "$SEG" "$TMP/planted/424242.seg"
  chown 65534:65534 "$TMP/planted/424242.seg"
  timeout $T "$LEAKSCOPE" ls --dir "$TMP/planted" >"$TMP/out" 2>"$TMP/err"
  check "planted: ls exits 0" 0 "$?"
  check "planted: only our own segment listed" 1 "$(grep -c "leaky_fds" "$TMP/out")"
  check_true "planted: ls names the owner" grep -q "424242.seg: owned by uid 65534, not by us" "$TMP/err"
  timeout $T "$LEAKSCOPE" show --dir "$TMP/planted" 424242 >/dev/null 2>"$TMP/err"
  check "planted: show exits 1" 1 "$?"
  check_true "planted: show names the owner" grep -q "owned by uid 65534" "$TMP/err"
  # A directory another user owns (created before root's first run).
  chown 65534:65534 "$TMP/planted"
  timeout $T "$LEAKSCOPE" ls --dir "$TMP/planted" >/dev/null 2>"$TMP/err"
  check "planted directory: ls exits 1" 1 "$?"
  check_true "planted directory: says who owns it" grep -q "belongs to uid 65534" "$TMP/err"
  timeout $T "$LEAKSCOPE" show --dir "$TMP/planted" "$pid" >/dev/null 2>"$TMP/err"
  check "planted directory: show exits 1" 1 "$?"
  chown 0:0 "$TMP/planted"
  chmod 777 "$TMP/planted"
  timeout $T "$LEAKSCOPE" ls --dir "$TMP/planted" >/dev/null 2>"$TMP/err"
  check "world-writable directory: ls exits 1" 1 "$?"
  check_true "world-writable directory: says so" grep -q "writable by others" "$TMP/err"
else
  echo "skip - planted segments need root to chown"
fi

# --- A FIFO as rules file: neither `run` nor the traced program hangs.
mkfifo "$TMP/rules.fifo"
out=$(timeout $T "$LEAKSCOPE" run --fd --quiet --rules "$TMP/rules.fifo" -- echo hello 2>"$TMP/err")
check "FIFO rules (--rules): run finishes, program runs" "hello 0" "$out $?"
check_true "FIFO rules (--rules): says it is a FIFO" grep -q "rules.fifo: is a FIFO" "$TMP/err"
out=$(LEAKSCOPE_RULES="$TMP/rules.fifo" timeout $T "$LEAKSCOPE" run --fd --quiet -- echo hello 2>"$TMP/err")
check "FIFO rules (LEAKSCOPE_RULES): run finishes" "hello 0" "$out $?"
out=$(LEAKSCOPE_RULES="$TMP/rules.fifo" LD_PRELOAD="$FDTRACK" timeout $T echo hello 2>"$TMP/err")
check "FIFO rules under a plain preload: program finishes" "hello 0" "$out $?"
check_true "FIFO rules under a plain preload: says why" grep -q "rules.fifo: is a FIFO" "$TMP/err"

# --- LEAKSCOPE_RULES=/dev/stdin must not eat the program's input.
out=$(printf 'line one\nline two\n' | LEAKSCOPE_RULES=/dev/stdin LD_PRELOAD="$FDTRACK" timeout $T cat 2>"$TMP/err")
check "stdin rules under a plain preload: cat gets its input" "line one
line two" "$out"
out=$(printf 'line one\n' | LEAKSCOPE_RULES=/dev/stdin timeout $T "$LEAKSCOPE" run --fd --quiet -- cat 2>"$TMP/err")
check "stdin rules under run: cat gets its input" "line one" "$out"
check_true "stdin rules: refused as not a regular file" grep -q "not a regular file" "$TMP/err"
# A regular file behind /dev/stdin is a new open of that file: the program's
# own offset is untouched.
printf 'redis port 6379\n' >"$TMP/stdin.rules"
out=$(LEAKSCOPE_RULES=/dev/stdin LD_PRELOAD="$FDTRACK" timeout $T cat <"$TMP/stdin.rules" 2>"$TMP/err")
check "stdin rules from a file: cat still reads it whole" "redis port 6379" "$out"

finish
