#!/usr/bin/env python3
"""Check a crawl against the synthetic web's ground truth.

The expected requests are computed here, independently of the crawler: a
breadth-first walk of the link graph that `leakscope-web --dump-graph`
prints (canonical URLs, the rules robots.txt gives leakscope-crawler, redirect
targets), from the seeds. The actual requests are the server's access log.
Checks: every expected URL was requested exactly once and nothing else was;
one robots.txt per host reached; requests to one host at least the host's
delay apart.
"""
import argparse
import collections
import sys
from urllib.parse import urlsplit


def load_graph(path):
    hosts, pages = {}, {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "host":
                _, name, status, delay, disallow = parts
                hosts[name] = (int(status), float(delay), [] if disallow == "-" else disallow.split(" "))
            elif parts[0] == "page":
                _, url, status, kind, location, links = parts
                pages[url] = (int(status), kind, location, links.split(" ") if links else [])
    return hosts, pages


def expected_requests(hosts, pages, seeds, max_redirects):
    """URLs a polite, exactly-once crawler must request, robots.txt included."""
    discovered = {}
    queue = collections.deque()
    for s in seeds:
        if s not in discovered:
            discovered[s] = 0
            queue.append(s)
    fetched = set()
    while queue:
        url = queue.popleft()
        parts = urlsplit(url)
        host = hosts.get(parts.hostname)
        path = parts.path + ("?" + parts.query if parts.query else "")
        if host and any(path.startswith(p) for p in host[2]):
            continue
        fetched.add(url)
        page = pages.get(url)
        if page is None:
            continue
        status, kind, location, links = page
        if kind == "html":
            for link in links:
                if link not in discovered:
                    discovered[link] = 0
                    queue.append(link)
        elif kind == "redirect":
            hops = discovered[url] + 1
            if hops <= max_redirects and location not in discovered:
                discovered[location] = hops
                queue.append(location)
    reached = {urlsplit(u).netloc for u in discovered}
    robots = {"http://%s/robots.txt" % h for h in reached}
    return fetched, robots


def load_access_log(path):
    entries = []
    with open(path) as f:
        for line in f:
            ts, host, path, status = line.split()
            entries.append((float(ts), host.lower(), path, int(status)))
    return entries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", required=True)
    ap.add_argument("--access-log", required=True)
    ap.add_argument("--seeds", required=True)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--max-redirects", type=int, default=5)
    ap.add_argument("--subset", action="store_true",
                    help="a --max-pages crawl: requests must be a duplicate-free subset")
    ap.add_argument("--min-pages", type=int, default=0)
    args = ap.parse_args()

    hosts, pages = load_graph(args.graph)
    seeds = [l.strip() for l in open(args.seeds) if l.strip() and not l.startswith("#")]
    fetched, robots = expected_requests(hosts, pages, seeds, args.max_redirects)
    log = load_access_log(args.access_log)
    actual = collections.Counter("http://%s%s" % (h, p) for _, h, p, _ in log)

    errors = []
    dups = [u for u, n in actual.items() if n > 1]
    if dups:
        errors.append("requested more than once: %s" % sorted(dups)[:10])
    page_requests = {u for u in actual if not u.endswith("/robots.txt")}
    robots_requests = {u for u in actual if u.endswith("/robots.txt")}
    if args.subset:
        if page_requests - fetched:
            errors.append("requested but not allowed/reachable: %s" % sorted(page_requests - fetched)[:10])
        if len(page_requests) < args.min_pages:
            errors.append("only %d pages requested, wanted %d" % (len(page_requests), args.min_pages))
        hosts_used = {urlsplit(u).netloc for u in page_requests}
        missing_robots = {"http://%s/robots.txt" % h for h in hosts_used} - robots_requests
        if missing_robots:
            errors.append("pages fetched before robots.txt: %s" % sorted(missing_robots)[:10])
    else:
        if fetched - page_requests:
            errors.append("%d expected URLs never requested: %s" % (len(fetched - page_requests),
                                                                    sorted(fetched - page_requests)[:10]))
        if page_requests - fetched:
            errors.append("%d unexpected requests: %s" % (len(page_requests - fetched),
                                                          sorted(page_requests - fetched)[:10]))
        if robots_requests != robots:
            errors.append("robots.txt requests differ: missing %s, extra %s" % (
                sorted(robots - robots_requests)[:5], sorted(robots_requests - robots)[:5]))

    # Politeness: consecutive requests to one host at least its delay apart,
    # and no page of a host before its robots.txt.
    by_host = collections.defaultdict(list)
    for ts, h, p, _ in log:
        by_host[h].append((ts, p))
    tight = []
    for h, reqs in by_host.items():
        reqs.sort()
        if reqs[0][1] != "/robots.txt":
            errors.append("first request to %s was %s, not /robots.txt" % (h, reqs[0][1]))
        delay = max(args.delay, hosts[h][1] if h in hosts else 0)
        for (t0, _), (t1, p1) in zip(reqs, reqs[1:]):
            if t1 - t0 < delay - 0.002:
                tight.append((h, p1, round(t1 - t0, 4), delay))
    if tight:
        errors.append("%d requests closer than the host's delay, e.g. %s" % (len(tight), tight[:5]))

    print("groundtruth: %d requests, %d expected pages, %d hosts reached, %d hosts with Crawl-delay" % (
        len(log), len(fetched), len(robots), sum(1 for h in by_host if h in hosts and hosts[h][1] > 0)))
    if errors:
        for e in errors:
            print("FAIL:", e)
        return 1
    print("groundtruth: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
