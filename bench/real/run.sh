#!/bin/bash
# bench/real/run.sh BUILD_DIR [REPS] - real programs plain and under both
# shims (LD_PRELOAD=libfdtrack.so:libmemtrack.so), interleaved in one run.
# Prints, per workload, the median wall time of each mode and its ratio to
# plain. Workloads (issue 8): cc1 compiling ~3000 lines, make building a
# small tree, git clone + gc, curl fetching 100 URLs, node serving 2000
# requests, sqlite3 inserting 20000 rows, start-up (200 x /bin/true from a
# bash loop: fork + exec) and spawn (200 x /bin/true by posix_spawn: exec
# alone, no fork handlers).
set -euo pipefail
BUILD=$(cd "${1:?usage: run.sh BUILD_DIR [REPS]}" && pwd)
REPS=${2:-3}
LIB=$BUILD/lib
BOTH="$LIB/libfdtrack.so:$LIB/libmemtrack.so"
W=$(mktemp -d /tmp/lks-bench-real.XXXXXX)
SEGS=$(mktemp -d /dev/shm/lks-bench-segs.XXXXXX) # where segments live by default
trap 'kill $HTTP_PID 2>/dev/null || true; rm -rf "$W" "$SEGS"' EXIT

# --- inputs, made once, untimed
python3 - "$W" <<'PY'
import os, sys
w = sys.argv[1]
with open(f"{w}/big.c", "w") as f:
    f.write("#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n")
    for i in range(300):
        f.write(f"struct s{i} {{ int a, b; char name[32]; double v[4]; }};\n")
        f.write(f"static int f{i}(struct s{i} *p, int n) {{\n  int t = 0;\n")
        f.write(f"  for (int k = 0; k < n; k++) {{ t += p->a * k + p->b; p->v[k & 3] += t; }}\n")
        f.write(f"  if (t > {i}) snprintf(p->name, sizeof p->name, \"%d\", t);\n  return t;\n}}\n")
    f.write("int main(void) { int t = 0;\n")
    for i in range(300):
        f.write(f"  {{ struct s{i} x = {{{i}, 2}}; t += f{i}(&x, {i % 7 + 1}); }}\n")
    f.write("  return t & 1; }\n")
os.makedirs(f"{w}/tree", exist_ok=True)
for i in range(30):
    with open(f"{w}/tree/m{i}.c", "w") as f:
        f.write("#include <stdio.h>\n" + "".join(
            f"int m{i}_{k}(int x) {{ return x * {k} + {i}; }}\n" for k in range(40)))
with open(f"{w}/tree/Makefile", "w") as f:
    objs = " ".join(f"m{i}.o" for i in range(30))
    f.write(f"all: lib.a\nlib.a: {objs}\n\tar rcs $@ $^\n%.o: %.c\n\tcc -O1 -c $< -o $@\n"
            "clean:\n\trm -f *.o lib.a\n")
os.makedirs(f"{w}/www", exist_ok=True)
for i in range(100):
    with open(f"{w}/www/f{i}", "w") as f:
        f.write("x" * 2000)
with open(f"{w}/serve.js", "w") as f:
    f.write("""
const http = require('http');
const srv = http.createServer((req, res) => { res.end('hello ' + req.url); });
srv.listen(0, '127.0.0.1', async () => {
  const port = srv.address().port;
  const agent = new http.Agent({ keepAlive: false });
  for (let i = 0; i < 2000; i++) {
    await new Promise((ok, bad) => http.get({ port, path: '/' + i, agent }, r => {
      r.resume(); r.on('end', ok); }).on('error', bad));
  }
  srv.close();
});
""")
PY
python3 "$(dirname "$0")/inserts.py" "$W/inserts.sql"
cc -O2 -o "$W/spawn" "$(dirname "$0")/spawn.c"
git init -q "$W/repo"
(cd "$W/repo" && for i in $(seq 60); do
   for k in $(seq 5); do echo "line $i $k $RANDOM" >> "file$k.txt"; done
   git add -A && git -c user.email=b@x -c user.name=b commit -qm "c$i"; done)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$W/www" && exec /usr/bin/python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
HTTP_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/f0" && break; sleep 0.1; done
URLS=$(for i in $(seq 0 99); do printf 'http://127.0.0.1:%s/f%s ' "$PORT" "$i"; done)

# --- workloads: each a shell command run with the mode's environment
declare -A CMD=(
  [cc1]="gcc -O1 -c $W/big.c -o $W/big.o"
  [make]="make -s -C $W/tree clean >/dev/null && make -s -C $W/tree"
  [git]="rm -rf $W/clone && git clone -q --no-local $W/repo $W/clone && git -C $W/clone gc -q"
  [curl]="curl -s -o /dev/null $URLS"
  [node]="node $W/serve.js"
  [sqlite3]="rm -f $W/db && sqlite3 $W/db < $W/inserts.sql >/dev/null"
  [startup]="for i in \$(seq 200); do /bin/true; done"
  [spawn]="$W/spawn 200 /bin/true"
)
ORDER="cc1 make git curl node sqlite3 startup spawn"

run_one() { # mode workload -> "wall cpu" seconds (cpu = user + sys of the tree)
  local env=()
  [ "$1" = both ] && env=(LD_PRELOAD="$BOTH" LEAKSCOPE_DIR="$SEGS")
  /usr/bin/time -f '%e %U %S' -o "$W/time" env "${env[@]}" bash -c "${CMD[$2]}" >/dev/null 2>&1 ||
    echo "  ($2 under $1 exited non-zero)" >&2
  rm -f "$SEGS"/*.seg
  awk '{printf "%s %.3f\n", $1, $2 + $3}' "$W/time"
}

declare -A T C
for r in $(seq "$REPS"); do
  for wl in $ORDER; do
    for mode in plain both; do
      read -r wall cpu < <(run_one $mode "$wl")
      T[$wl,$mode]+="$wall "
      C[$wl,$mode]+="$cpu "
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| workload | plain wall s | both wall s | wall ratio | plain cpu s | both cpu s | cpu ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
for wl in $ORDER; do
  p=$(echo "${T[$wl,plain]}" | median); b=$(echo "${T[$wl,both]}" | median)
  pc=$(echo "${C[$wl,plain]}" | median); bc_=$(echo "${C[$wl,both]}" | median)
  printf '| %s | %.3f | %.3f | %.2fx | %.3f | %.3f | %.2fx |\n' "$wl" "$p" "$b" \
    "$(echo "$b / $p" | bc -l)" "$pc" "$bc_" "$(echo "$bc_ / ($pc + 0.001)" | bc -l)"
done
for wl in startup spawn; do
  p=$(echo "${C[$wl,plain]}" | median); b=$(echo "${C[$wl,both]}" | median)
  printf '\n%s: cpu cost per process: %.2f ms' "$wl" "$(echo "($b - $p) * 1000 / 200" | bc -l)"
done
echo
