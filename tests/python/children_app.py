# children_app.py - a parent whose children are made every way Python makes
# them, for test_python_children.sh. The parent keeps 4 files at its
# "# LEAK:parent" line, then starts one child per MODE, each keeping its own
# number of files at children_child.py's "# LEAK:child" line:
#   fork        multiprocessing, 'fork' (os.fork, no exec)           7 files
#   spawn       multiprocessing, 'spawn' (a fresh interpreter, vfork) 6 files
#   forkserver  multiprocessing, 'forkserver' (forked by the server,
#               its descriptors passed over a unix socket)           8 files
#   subprocess  subprocess.run([sys.executable, children_child.py])  5 files
# then keeps 3 more files at the same line, writes DIR/parent.truth and
# ends with os._exit. Exec'd children get their own LEAKSCOPE_ROLE.
#   python3 children_app.py DIR MODE...
import multiprocessing as mp
import os
import subprocess
import sys

import children_child as child

D = sys.argv[1]
COUNTS = {"fork": 7, "spawn": 6, "forkserver": 8, "subprocess": 5}
held = []


def keep_files(n, tag):
    for i in range(n):
        held.append(open(os.path.join(D, "%s.%d" % (tag, i)), "w"))  # LEAK:parent


def start(mode):
    n = COUNTS[mode]
    if mode == "subprocess":
        env = dict(os.environ, LEAKSCOPE_ROLE="sub")
        subprocess.run([sys.executable, child.__file__, mode, D, str(n)], env=env, check=True,
                       stdout=subprocess.PIPE)
        return
    if mode != "fork":
        os.environ["LEAKSCOPE_ROLE"] = mode
    p = mp.get_context(mode).Process(target=child.work, args=(mode, D, n))
    p.start()
    p.join()
    if p.exitcode != 0:
        sys.exit("%s child exited %s" % (mode, p.exitcode))


if __name__ == "__main__":
    keep_files(4, "parent")
    for mode in sys.argv[2:]:
        start(mode)
    keep_files(3, "after")
    child.truth("parent", D)
    os._exit(0)
