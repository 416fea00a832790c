#!/usr/bin/env bash
# Failures that used to pass quietly: a statically linked program (no ELF
# interpreter, like Go without cgo) or shims that never start are reported as
# not traced, with why and a non-zero exit, instead of "no leak";
# `leakscope run` honours LEAKSCOPE_RULES like --rules; a relative --dir
# survives children that change directory; "permission denied" is not
# reported as "does not exist".
# Needs: LEAKSCOPE; gcc with a static libc (build-essential); root for the
# permission case (run as nobody).
. "$(dirname "$0")/lib.sh"
S="$TMP/summary.json"
T=60

# --- A statically linked program cannot be traced: say so, run nothing.
printf '#include <stdio.h>\nint main(int c, char **v) { FILE *f = fopen(v[1], "w"); return f ? 0 : 1; }\n' >"$TMP/static.c"
gcc -static -O1 -o "$TMP/static" "$TMP/static.c"
timeout $T "$LEAKSCOPE" run --summary "$S" -- "$TMP/static" "$TMP/ran" >/dev/null 2>"$TMP/err"
check "static program: exit 2" 2 "$?"
check_true "static program: says it is statically linked and why" \
  grep -q "cannot trace $TMP/static: it is statically linked (no ELF interpreter)" "$TMP/err"
check_true "static program: not run" test ! -e "$TMP/ran"
check_true "static program: no 'no leak' verdict" bash -c "! grep -qi 'no .*leak' '$TMP/err'"
# Found on PATH like execvp would.
PATH="$TMP:$PATH" timeout $T "$LEAKSCOPE" run -- static "$TMP/ran" >/dev/null 2>"$TMP/err"
check "static program on PATH: exit 2" 2 "$?"
# A script whose interpreter is static is judged by its interpreter.
printf '#!%s\n' "$TMP/static" >"$TMP/script"
chmod +x "$TMP/script"
timeout $T "$LEAKSCOPE" run -- "$TMP/script" >/dev/null 2>"$TMP/err"
check "script with a static interpreter: exit 2" 2 "$?"
check_true "script with a static interpreter: names it" grep -q "statically linked" "$TMP/err"

# --- Shims that never start (here: the preloaded files are not libraries;
# the loader ignores them): no process traced, said plainly, non-zero exit.
mkdir -p "$TMP/badlib"
: >"$TMP/badlib/libfdtrack.so"
: >"$TMP/badlib/libmemtrack.so"
LEAKSCOPE_LIB_DIR="$TMP/badlib" timeout $T "$LEAKSCOPE" run --summary "$S" -- /bin/true >/dev/null 2>"$TMP/err"
check "shims never started: exit 2" 2 "$?"
check_true "shims never started: says no process was traced" grep -q "no process of this run was traced" "$TMP/err"
check_true "shims never started: no summary claiming no leak" bash -c "! grep -q 'processes traced' '$TMP/err'"

# --- LEAKSCOPE_RULES works like --rules, also for children that cd away
# and with a relative path.
mkdir -p "$TMP/special" "$TMP/work"
echo data >"$TMP/special/f"
printf 'special path */special/*\n' >"$TMP/work/my.rules"
(cd "$TMP/work" && LEAKSCOPE_RULES=my.rules timeout $T "$LEAKSCOPE" run --fd --quiet --summary "$S" -- \
  bash -c 'exec 3<"$1"; cd /; /bin/cat "$1" >/dev/null 3<&-' _ "$TMP/special/f")
check "LEAKSCOPE_RULES: run exits 0" 0 "$?"
check "LEAKSCOPE_RULES: the shell's descriptor is 'special'" 1 \
  "$(jq '[.processes[] | select(.comm=="bash") | .fd.by_subsystem.special.open // 0] | add' "$S")"
check "LEAKSCOPE_RULES: a child after cd / uses the same rules" 1 \
  "$(jq '[.processes[] | select(.comm=="cat") | .fd.by_subsystem.special.opened // 0] | add' "$S")"

# --- A relative --dir: children that change directory still write there.
mkdir -p "$TMP/elsewhere"
(cd "$TMP/work" && timeout $T "$LEAKSCOPE" run --fd --quiet --dir rel --summary "$S" -- \
  bash -c 'cd "$1" && /bin/true; exit 0' _ "$TMP/elsewhere")
check "relative --dir: both processes summarized" "bash,true" \
  "$(jq -r '[.processes[].comm] | sort | join(",")' "$S")"
check_true "relative --dir: nothing written relative to the child's directory" test ! -e "$TMP/elsewhere/rel"

# --- Permission denied is not "does not exist".
if [ "$(id -u)" -eq 0 ]; then
  BIN=$(mktemp -d /tmp/lks-bin-XXXXXX)
  CLEANUP+=("rm -rf '$BIN'")
  chmod 755 "$BIN"
  cp "$LEAKSCOPE" "$BIN/leakscope"
  mkdir -m 700 "$TMP/private"
  nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
  nobody timeout $T "$BIN/leakscope" ls --dir "$TMP/private/segments" >"$TMP/out" 2>"$TMP/err"
  check "permission denied: ls exits 1" 1 "$?"
  check_true "permission denied: ls says so" grep -q "Permission denied" "$TMP/err"
  check_true "permission denied: not 'does not exist'" bash -c "! grep -q 'does not exist' '$TMP/out' '$TMP/err'"
  nobody timeout $T "$BIN/leakscope" show --dir "$TMP/private/segments" 1 >/dev/null 2>"$TMP/err"
  check "permission denied: show exits 1" 1 "$?"
  check_true "permission denied: show says so" grep -q "Permission denied" "$TMP/err"
  timeout $T "$BIN/leakscope" ls --dir "$TMP/missing" >"$TMP/out" 2>&1
  check "missing directory: ls exits 0 and says it does not exist" "0 1" "$? $(grep -c 'does not exist' "$TMP/out")"
else
  echo "skip - permission case needs root to switch to nobody"
fi

finish
