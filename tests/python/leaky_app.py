# leaky_app.py - a small Python service with the leaks of the seed stories,
# for test_python_e2e.sh. Each leaking line ends in a "# LEAK:name" marker
# the test greps for its line number.
#   python3 leaky_app.py REDIS_PORT READY_FILE leak|clean
# Leaks (or, with "clean", does the same work and gives everything back):
#   a redis-py pool that grows, pages retained in a list, forked parsers that
#   keep their parsed documents and a pipe each, and worker threads that keep
#   their sockets. Then writes READY_FILE (pids) and waits for SIGTERM, which
#   ends every process with os._exit (no finalizer hides what is held).
import os
import signal
import socket
import sys
import threading
import time

import redis

PORT = int(sys.argv[1])
READY = sys.argv[2]
LEAK = sys.argv[3] == "leak"

held = []


def grow_pool(pool, n):
    for _ in range(n):
        conn = pool.get_connection("PING")  # LEAK:pool
        conn.send_command("PING")
        conn.read_response()
        if LEAK:
            held.append(conn)
        else:
            pool.release(conn)


def read_page(i):
    return (b"<html>%d</html>" % i) * 40  # LEAK:page


def crawl(n):
    pages = []
    for i in range(n):
        page = read_page(i)
        if LEAK:
            pages.append(page)
    held.append(pages)


class Parser:
    def __init__(self):
        self.docs = []
        self.pipes = []

    def parse(self, n):
        for i in range(n):
            doc = {"id": i, "words": ["w%d" % j for j in range(50)]}  # LEAK:parse
            r, w = os.pipe()  # LEAK:parser_pipe
            if LEAK:
                self.docs.append(doc)
                self.pipes.append((r, w))
            else:
                os.close(r)
                os.close(w)


def fork_parser(n):
    pid = os.fork()
    if pid == 0:
        p = Parser()
        p.parse(n)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        while True:
            time.sleep(1)
    return pid


def worker(n):
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", PORT))  # LEAK:worker
        if LEAK:
            held.append(s)
        else:
            s.close()


def main():
    pool = redis.ConnectionPool(host="127.0.0.1", port=PORT)
    grow_pool(pool, 12)
    crawl(3000)
    children = [fork_parser(200), fork_parser(200)]
    threads = [threading.Thread(target=worker, args=(6,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def stop(*_):
        for c in children:
            os.kill(c, signal.SIGTERM)
            os.waitpid(c, 0)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    with open(READY + ".tmp", "w") as f:
        f.write(" ".join(str(p) for p in [os.getpid()] + children) + "\n")
    os.rename(READY + ".tmp", READY)
    while True:
        time.sleep(1)


main()
