#!/usr/bin/env python3
"""Crawl benchmark: leakscope-crawler against leakscope-web and a real
redis-server on this machine. Reports pages/s, CPU seconds per page and peak
RSS for the fetcher and the parsers (and the CPU of Redis and the web server,
which share the machine), optionally with a perf profile of every process.

  bench/crawler/bench.py [--bin build/bin] [--max-pages 30000] [--perf]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../build/bin"))
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--max-pages", type=int, default=30000)
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--parsers", type=int, default=2)
    ap.add_argument("--delay", type=float, default=0.1)
    ap.add_argument("--perf", action="store_true", help="profile every process with perf for 10 s")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    bindir = os.path.abspath(args.bin)

    tmp = tempfile.mkdtemp(prefix="leakscope-crawler-bench.")
    procs = []
    try:
        rport, wport = free_port(), free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", tmp,
                                  "--save", "", "--appendonly", "no", "--daemonize", "no"],
                                 stdout=subprocess.DEVNULL)
        procs.append(redis)
        web = subprocess.Popen([os.path.join(bindir, "leakscope-web"), "--port", str(wport), "--hosts",
                                str(args.hosts), "--pages", str(args.pages), "--crawl-delay", "0.5"],
                               stderr=subprocess.DEVNULL)
        procs.append(web)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", rport)).close()
                socket.create_connection(("127.0.0.1", wport)).close()
                break
            except OSError:
                time.sleep(0.05)
        with open(os.path.join(tmp, "seeds.txt"), "w") as f:
            f.write("http://h0.example/\n")
        cmd = [os.path.join(bindir, "leakscope-crawler"), "--seeds", os.path.join(tmp, "seeds.txt"),
               "--data-dir", os.path.join(tmp, "data"), "--redis", "127.0.0.1:%d" % rport,
               "--connect-to", "127.0.0.1:%d" % wport, "--max-pages", str(args.max_pages),
               "--workers", str(args.workers), "--parsers", str(args.parsers), "--delay", str(args.delay),
               "--stats-json", os.path.join(tmp, "stats.json"), "--log", os.path.join(tmp, "crawl.log")]
        print("command:", " ".join(cmd), flush=True)
        crawler = subprocess.Popen(cmd)
        procs.append(crawler)
        start = time.time()
        last = {}
        perf = None
        while crawler.poll() is None:
            pids = {"fetcher": [crawler.pid], "parsers": children(crawler.pid), "redis-server": [redis.pid],
                    "leakscope-web": [web.pid]}
            for role, plist in pids.items():
                for pid in plist:
                    try:
                        last[pid] = (role, cpu_s(pid), peak_rss_mb(pid))
                    except OSError:
                        pass
            if args.perf and perf is None and time.time() - start > 3:
                allpids = ",".join(str(p) for plist in pids.values() for p in plist)
                perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", os.path.join(tmp, "perf.data"),
                                         "-p", allpids, "--", "sleep", "10"],
                                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "perf.err"), "w"))
            time.sleep(0.2)
        wall = time.time() - start
        if perf:
            perf.wait()
        stats = json.load(open(os.path.join(tmp, "stats.json")))
        fetched, elapsed = stats["pages_fetched"], stats["elapsed_s"]
        by_role = {}
        for role, cpu, rss in last.values():
            r = by_role.setdefault(role, [0.0, 0.0, 0])
            r[0] += cpu
            r[1] = max(r[1], rss)
            r[2] += 1
        result = {
            "pages_fetched": fetched, "pages_parsed": stats["pages_parsed"], "errors": stats["errors"],
            "elapsed_s": round(elapsed, 2), "pages_per_s": round(fetched / elapsed, 1),
            "mb_fetched_per_s": round(stats["bytes_fetched"] / 1e6 / elapsed, 1),
        }
        print("\n%-14s %10s %14s %12s" % ("process", "CPU s", "CPU ms/page", "peak RSS MB"))
        for role in ("fetcher", "parsers", "redis-server", "leakscope-web"):
            cpu, rss, n = by_role.get(role, [0, 0, 0])
            print("%-14s %10.2f %14.3f %12.1f%s" % (role, cpu, 1000 * cpu / max(fetched, 1), rss,
                                                     " (%d processes, max)" % n if n > 1 else ""))
            result[role] = {"cpu_s": round(cpu, 2), "cpu_ms_per_page": round(1000 * cpu / max(fetched, 1), 3),
                            "peak_rss_mb": round(rss, 1)}
        print("\n%d pages in %.1f s: %.0f pages/s, %.1f MB/s of bodies, %d errors (wall %.1f s)" % (
            fetched, elapsed, fetched / elapsed, result["mb_fetched_per_s"], stats["errors"], wall))
        if perf:
            report = subprocess.run(["perf", "report", "-i", os.path.join(tmp, "perf.data"), "--no-children",
                                     "--sort", "pid,dso", "--stdio", "-g", "none", "--percent-limit", "1.5"],
                                    capture_output=True, text=True).stdout
            if not report.strip():
                print(open(os.path.join(tmp, "perf.err")).read())
            roles = ", ".join("%d=%s" % (pid, role) for pid, (role, _, _) in sorted(last.items()))
            print("\nperf profile, share of all samples by process and library (%s):" % roles)
            print("\n".join(l for l in report.splitlines() if l.strip() and not l.startswith("#")))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
