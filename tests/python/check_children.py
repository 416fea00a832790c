# check_children.py - holds the summary of children_app.py under `leakscope
# run` against what each process did (children_app.py's table) and what the
# kernel said it held just before it ended (DIR/ROLE.truth, /proc/self/fd).
#   python3 check_children.py SUMMARY.json DIR MODE...
# Prints "ok - ..." / "FAIL - ..." lines; exits 1 on any failure.
import json
import os
import sys

import tap
from tap import check, leak_marker

HERE = os.path.dirname(os.path.abspath(__file__))
COUNTS = {"fork": 7, "spawn": 6, "forkserver": 8, "subprocess": 5}
ROLES = {"fork": "app", "spawn": "spawn", "forkserver": "forkserver", "subprocess": "sub"}
summary_path, d, modes = sys.argv[1], sys.argv[2], sys.argv[3:]
summary = json.load(open(summary_path))

parent_site = "keep_files (children_app.py:%d) [python]" % leak_marker("parent", HERE + "/children_app.py")
child_site = "keep_files (children_child.py:%d) [python]" % leak_marker("child", HERE + "/children_child.py")
procs = {p["pid"]: p for p in summary["processes"]}
truth = {}
for role in ["parent"] + modes:
    try:
        truth[role] = json.load(open(os.path.join(d, role + ".truth")))
    except OSError:
        check(False, "%s wrote what the kernel says it holds" % role)
if tap.failed:
    sys.exit(1)
parent = truth["parent"]["pid"]


def kernel(role, pred):
    return sum(1 for link in truth[role]["fds"].values() if pred(link))


def ours(link):
    return link.startswith(d + "/")


def leaks_of(pid):
    return sorted(([l["open"], l["site"], l["subsystem"]] for l in summary["leaks"] if l["pid"] == pid),
                  reverse=True)


for role, t in truth.items():
    p = procs.get(t["pid"])
    check(p is not None, "%s: pid %d is in the summary" % (role, t["pid"]))
    if not p:
        continue
    fd = p["fd"]
    what = "%s (pid %d)" % (role, t["pid"])
    check(p["ppid"] == t["ppid"], "%s: ppid %s, kernel %d" % (what, p["ppid"], t["ppid"]))
    if role != "parent":
        check(p["role"] == ROLES[role], "%s: role %r" % (what, p["role"]))
    check(p["python"]["frames"] == "read", "%s: Python frames read" % what)
    # The kernel's word at the end: every descriptor it listed, by kind.
    check(fd["open_total"] + fd["shim_own"] == len(t["fds"]),
          "%s: %d open + %d the shim's own = %d in /proc/self/fd" %
          (what, fd["open_total"], fd["shim_own"], len(t["fds"])))
    subs = fd["by_subsystem"]
    check(subs.get("file", {}).get("open", 0) == kernel(role, ours),
          "%s: file open %s, kernel %d" % (what, subs.get("file", {}).get("open"), kernel(role, ours)))
    # stdio counts as stdio whatever it is; the shim's own descriptors are
    # libunwind's validation pipe.
    pipes = sum(1 for n, l in t["fds"].items() if int(n) > 2 and l.startswith("pipe:"))
    check(subs.get("pipe", {}).get("open", 0) == pipes - fd["shim_own"],
          "%s: pipe open %s, kernel %d less the shim's own %d" %
          (what, subs.get("pipe", {}).get("open"), pipes, fd["shim_own"]))
    check(fd["unknown_closes"] == 0 and fd["stale"] == 0 and fd["unattributed"] == 0,
          "%s: no close of an unknown descriptor, none stale, none unattributed (%d, %d, %d)" %
          (what, fd["unknown_closes"], fd["stale"], fd["unattributed"]))

# Each process holds its own files, named by its own line, and nothing else.
check(leaks_of(parent) == [[4, parent_site, "file"], [3, parent_site, "file"]],
      "parent: 4 + 3 files held at %s: %s" % (parent_site, leaks_of(parent)))
for mode in modes:
    pid = truth[mode]["pid"]
    check(leaks_of(pid) == [[COUNTS[mode], child_site, "file"]],
          "%s child: %d files held at %s: %s" % (mode, COUNTS[mode], child_site, leaks_of(pid)))
    frames = [l["frames"] for l in summary["leaks"] if l["pid"] == pid][:1]
    caller = "<module> (children_child.py:" if mode == "subprocess" else "BaseProcess.run (process.py:"
    check(frames and any(f.startswith(caller) for f in frames[0]),
          "%s child: the site's frames reach %s" % (mode, caller))
    p = procs.get(pid, {})
    if mode in ("fork", "forkserver"):
        server = parent if mode == "fork" else truth[mode]["ppid"]
        check(p.get("forked_from") == server, "%s child: forked from %d without exec" % (mode, server))
    else:
        check(p.get("forked_from") == 0 and p.get("exe", "").startswith("/usr/bin/python3"),
              "%s child: a fresh interpreter (exe %s)" % (mode, p.get("exe")))
if "fork" in truth:
    inh = procs[truth["fork"]["pid"]]["fd"]["inherited_sites"]
    check({"subsystem": "file", "open": 4, "site": parent_site} in inh,
          "fork child: the parent's 4 files are inherited, at the parent's line: %s" % inh)
helpers = [p["pid"] for p in summary["processes"] if p["pid"] not in [t["pid"] for t in truth.values()]]
check(all(not leaks_of(pid) for pid in helpers),
      "no leak in multiprocessing's helpers (resource tracker, forkserver) %s" % helpers)
sys.exit(tap.failed)
