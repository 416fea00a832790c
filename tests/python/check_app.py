# check_app.py - compares what leakscope reported about leaky_app.py with
# what the app did (its marker lines) and what the kernel says (/proc).
#   python3 check_app.py APP MODE SHOW.json SUMMARY.json KERNEL.json
# Prints "ok - ..." / "FAIL - ..." lines; exits 1 on any failure.
import json
import sys

import tap
from tap import check, leak_marker

if sys.argv[1] == "--settled":
    # the live view is published by a low-priority aggregator: has it caught
    # up with what the app did before it said "ready"? Leak mode: the
    # allocations are live; clean mode: they were made (and freed).
    show = json.load(open(sys.argv[2]))
    ps = show["processes"]
    if sys.argv[3] == "leak":
        def has(p, prefix, n):
            return any(s["live_allocs"] >= n and any(f.startswith(prefix) for f in s["frames"])
                       for s in p["heap"]["sites"])
        ok = has(ps[0], "read_page", 3000) and all(has(p, "Parser.parse", 200) for p in ps[1:])
    else:
        def made(p, subsys, n):
            return p["heap"]["by_subsystem"].get(subsys, {"allocs": 0})["allocs"] >= n
        ok = made(ps[0], "pages", 3000) and all(made(p, "parsers", 200) for p in ps[1:])
    sys.exit(0 if ok else 1)

app, mode, show_path, summary_path, kernel_path = sys.argv[1:6]
show = json.load(open(show_path))
summary = json.load(open(summary_path))
kernel = json.load(open(kernel_path))  # {"pids": [main, c1, c2], "sockets": n, "pipes": {pid: n}}


def at(name):
    return "(leaky_app.py:%d) [python]" % leak_marker(name, app)


main, children = kernel["pids"][0], kernel["pids"][1:]
procs = {p["pid"]: p for p in show["processes"]}
for pid in kernel["pids"]:
    p = procs.get(pid)
    check(p is not None, "pid %d shown" % pid)
    if p:
        check(p.get("python") == {"version": "3.11", "frames": "read", "alloc": "pymalloc-wrapped"},
              "pid %d python mode %s" % (pid, p.get("python")))

leaks = summary["leaks"]


def leak(pid, headline):
    return [l for l in leaks if l["pid"] == pid and l["site"].startswith(headline)]


if mode == "leak":
    # the redis pool: sockets made in redis-py, named by the program's line
    pool = leak(main, "grow_pool " + at("pool"))
    check(len(pool) == 1 and pool[0]["open"] == 12 and pool[0]["subsystem"] == "redis",
          "pool leak: 12 redis sockets at grow_pool: %s" % pool)
    check(pool and any("(connection.py:" in f for f in pool[0]["frames"]),
          "pool leak stack goes through redis-py's connection.py")
    workers = leak(main, "worker " + at("worker"))
    check(len(workers) == 1 and workers[0]["open"] == 12 and workers[0]["subsystem"] == "socket",
          "thread leak: 12 sockets at worker() from 2 threads: %s" % workers)
    check(workers and any(f.startswith("Thread.run (threading.py:") for f in workers[0]["frames"]),
          "thread stack reaches threading's Thread.run")
    # the descriptors agree with the kernel
    main_fd = procs[main]["fd"]["by_subsystem"]
    check(main_fd["redis"]["open"] + main_fd["socket"]["open"] == kernel["sockets"],
          "sockets: leakscope %d+%d, kernel %d" % (main_fd["redis"]["open"], main_fd["socket"]["open"],
                                                    kernel["sockets"]))
    for c in children:
        pipes = leak(c, "Parser.parse " + at("parser_pipe"))
        check(len(pipes) == 1 and pipes[0]["open"] == 400 and pipes[0]["subsystem"] == "parsers",
              "forked parser %d: 400 pipes at Parser.parse, rule pyfunc Parser.*: %s" % (c, pipes))
        by = procs[c]["fd"]["by_subsystem"]
        ours = by["parsers"]["open"] + by.get("pipe", {"open": 0})["open"]
        # the kernel also shows the shim's own pipe pair (libunwind's), never counted
        check(kernel["pipes"][str(c)] - ours in (0, 2),
              "parser %d pipes: leakscope %d, kernel %d" % (c, ours, kernel["pipes"][str(c)]))
    # the heap: pages retained by crawl(), documents kept by each parser
    pages = [s for s in procs[main]["heap"]["sites"]
             if any(f.startswith("read_page " + at("page")) for f in s["frames"])]
    check(pages and pages[0]["live_allocs"] == 3000 and pages[0]["subsystem"] == "pages",
          "pages: 3000 live at read_page, rule pyfunc read_page: %s" %
          [(s["live_allocs"], s["subsystem"]) for s in pages])
    for c in children:
        docs = [s for s in procs[c]["heap"]["sites"]
                if any(f.startswith("Parser.parse " + at("parse")) for f in s["frames"])
                and s["live_allocs"] >= 200]
        check(docs and all(s["subsystem"] == "parsers" for s in docs),
              "parser %d documents live at Parser.parse: %s" % (c, [(s["live_allocs"], s["subsystem"]) for s in docs]))
    parent_docs = [s for s in procs[main]["heap"]["sites"]
                   if any(f.startswith("Parser.parse") for f in s["frames"]) and s["live_allocs"] >= 200]
    check(parent_docs == [], "the parent holds no parser documents: each parser shows its own sites")
else:
    check(leaks == [], "clean run: no leak reported (%s)" % leaks)
    for pid in kernel["pids"]:
        big = [s for s in procs[pid]["heap"]["sites"]
               if any(f.startswith(("read_page", "Parser.parse")) for f in s["frames"])
               and s["live_bytes"] > 100000]
        check(big == [], "clean pid %d: nothing retained at read_page/Parser.parse" % pid)
sys.exit(tap.failed)
