#!/usr/bin/python3
"""make_recording.py OUT.db SCENARIO - a recording (docs/RECORDING.md,
schema 1) of processes whose truth is known, for testing the verdicts and the
report apart from the recorder. Deterministic (seeded). Scenarios:
  mixed  fetcher: redis pool growth (idle), http churn, retained page buffers,
         a GC sawtooth; parser: pool filling to its size, heap warm-up;
         wide: http EMFILE at its limit
  clean  the same processes without the leaks
"""
import math, random, sqlite3, sys

out, scenario = sys.argv[1], sys.argv[2]
leak = scenario == "mixed"
rnd = random.Random(11)
db = sqlite3.connect(out)
db.executescript(open(sys.argv[3]).read() if len(sys.argv) > 3 else """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tick (id INTEGER PRIMARY KEY, t REAL NOT NULL, scan_ms REAL NOT NULL, segments_skipped INTEGER NOT NULL);
CREATE TABLE process (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, start_ticks INTEGER NOT NULL, ppid INTEGER NOT NULL,
  comm TEXT NOT NULL, exe TEXT NOT NULL, role TEXT NOT NULL, session TEXT NOT NULL, producer TEXT NOT NULL,
  features INTEGER NOT NULL, start_time REAL NOT NULL, fds_limit INTEGER NOT NULL, first_tick INTEGER NOT NULL,
  last_tick INTEGER NOT NULL, exit_time REAL, UNIQUE (pid, start_ticks));
CREATE TABLE proc_sample (tick INTEGER NOT NULL, process INTEGER NOT NULL, rss_bytes INTEGER, fds_open INTEGER,
  heap_live_bytes INTEGER, sites_dropped INTEGER NOT NULL, PRIMARY KEY (tick, process)) WITHOUT ROWID;
CREATE TABLE subsys_sample (tick INTEGER NOT NULL, process INTEGER NOT NULL, subsystem TEXT NOT NULL,
  fds_open INTEGER, fds_opened INTEGER, fds_closed INTEGER, fd_open_failures INTEGER, sockets_idle INTEGER,
  heap_live_bytes INTEGER, heap_live_allocations INTEGER, heap_allocated_bytes INTEGER, heap_allocations INTEGER,
  heap_frees INTEGER, heap_older_10s INTEGER, heap_older_1m INTEGER, heap_older_10m INTEGER, heap_older_1h INTEGER,
  PRIMARY KEY (tick, process, subsystem)) WITHOUT ROWID;
CREATE TABLE fd_failure_sample (tick INTEGER NOT NULL, process INTEGER NOT NULL, subsystem TEXT NOT NULL,
  errno TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (tick, process, subsystem, errno)) WITHOUT ROWID;
CREATE TABLE site (id INTEGER PRIMARY KEY, process INTEGER NOT NULL, site_key INTEGER NOT NULL, subsystem TEXT NOT NULL,
  headline TEXT NOT NULL, frames TEXT NOT NULL, UNIQUE (process, site_key));
CREATE TABLE site_sample (tick INTEGER NOT NULL, site INTEGER NOT NULL, fds_open INTEGER NOT NULL,
  heap_live_bytes INTEGER NOT NULL, heap_live_allocations INTEGER NOT NULL, PRIMARY KEY (tick, site)) WITHOUT ROWID;
CREATE TABLE event (tick INTEGER NOT NULL, t REAL NOT NULL, process INTEGER NOT NULL, kind TEXT NOT NULL);
""")
N, T0 = 180, 1_800_000_000.0
db.executemany("INSERT INTO meta VALUES (?,?)",
               [("schema_version", "1"), ("interval_s", "1"), ("idle_after_s", "10"), ("top_sites", "10")])
procs = [(1, 4121, 1, "leakscope-crawl", "", 4096), (2, 4122, 4121, "leakscope-crawl", "parser", 4096),
         (3, 4123, 1, "wide", "", 96)]
for pid_row, pid, ppid, comm, role, limit in procs:
    db.execute("INSERT INTO process VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL)",
               (pid_row, pid, 1000 + pid, ppid, comm, "/usr/bin/" + comm, role, "", "preload", 3, T0 - 1,
                limit, 1, N))
sites = [(1, 1, "redis", "redis_pool_acquire (crawler/redis_pool.c:88) [leakscope-crawler]",
          "redis_pool_acquire (crawler/redis_pool.c:88) [leakscope-crawler]\nstore_push (crawler/store.c:40) [leakscope-crawler]\nmain (crawler/main.c:10) [leakscope-crawler]"),
         (2, 1, "parse", "fetch_page_buffer_grow (crawler/fetcher.c:120) [leakscope-crawler]",
          "fetch_page_buffer_grow (crawler/fetcher.c:120) [leakscope-crawler]\nfetch_write_body (crawler/fetcher.c:150) [leakscope-crawler]"),
         (3, 3, "http", "curl_socket_open (lib/cf-socket.c:300) [libcurl.so.4]", "curl_socket_open (lib/cf-socket.c:300) [libcurl.so.4]")]
for sid, prow, sub, head, frames in sites:
    db.execute("INSERT INTO site VALUES (?,?,?,?,?,?)", (sid, prow, 100 + sid, sub, head, frames))

http_open, opened, churn_fail = 40.0, 0, 0
for k in range(1, N + 1):
    t = T0 + k
    db.execute("INSERT INTO tick VALUES (?,?,0.5,0)", (k, t))
    # fetcher
    redis = 3 + (k // 6 if leak else min(k // 6, 5))
    idle = max(0, redis - 3)
    http_open += 0.15 * (40 - http_open) + rnd.gauss(0, 5)
    opened += 20 + rnd.randint(0, 5)
    retained = 200_000 + (60_000 * k if leak else 0)
    gc = 5_000_000 + (k % 20) * 400_000
    rows = [("redis", redis, redis + 5, 5, 0, idle, 100_000, 0, 0, 0),
            ("http", round(http_open), opened, opened - round(http_open), 0, 0, gc, opened * 3, 0, 0),
            ("parse", 0, 0, 0, 0, 0, retained, k * 10, retained - 120_000 if k > 10 else 0, retained - 1_000_000 if k > 60 else 0)]
    for sub, fo, fop, fcl, ff, si, hl, ha, o10, o1m in rows:
        db.execute("INSERT INTO subsys_sample VALUES (?,1,?,?,?,?,?,?,?,0,0,?,0,?,?,0,0)",
                   (k, sub, fo, fop, fcl, ff, si, hl, ha, max(o10, 0), max(o1m, 0)))
    db.execute("INSERT INTO proc_sample VALUES (?,1,50000000,?,?,0)", (k, redis + round(http_open), retained + gc))
    db.execute("INSERT INTO site_sample VALUES (?,1,?,0,0)", (k, redis - 3 if leak else redis))
    db.execute("INSERT INTO site_sample VALUES (?,2,0,?,?)", (k, retained - 200_000 + 1000, k))
    # parser: a pool filling to 8, a heap warming up to a plateau
    pool = min(8, 1 + k // 4)
    warm = 3_000_000 * (1 - math.exp(-k / 15))
    db.execute("INSERT INTO subsys_sample VALUES (?,2,'redis',?,?,0,0,?,?,0,0,0,0,0,0,0,0)",
               (k, pool, pool, pool - 1, round(warm)))
    db.execute("INSERT INTO proc_sample VALUES (?,2,20000000,?,?,0)", (k, pool, round(warm)))
    # wide: fills to its limit of 96 by tick 60, then opens fail
    wopen = min(93, 10 + k * 1.5)
    fails = max(0, k - 60) * 3 if leak else 0
    db.execute("INSERT INTO subsys_sample VALUES (?,3,'http',?,?,0,?,0,0,0,0,0,0,0,0,0,0)",
               (k, round(wopen) if leak else 10, 100 + k, fails))
    db.execute("INSERT INTO subsys_sample VALUES (?,3,'frontier',3,3,0,0,0,0,0,0,0,0,0,0,0,0)", (k,))
    if fails:
        db.execute("INSERT INTO fd_failure_sample VALUES (?,3,'http','EMFILE',?)", (k, fails))
    db.execute("INSERT INTO proc_sample VALUES (?,3,1000000,?,NULL,0)", (k, (round(wopen) if leak else 10) + 3))
    db.execute("INSERT INTO site_sample VALUES (?,3,?,0,0)", (k, round(wopen) - 5 if leak else 5))
db.commit()
