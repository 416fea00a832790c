# forklat.py - fork cost of a CPython process under the shims: a process
# holding 50 sockets forks 20 children that each write one byte to a pipe and
# _exit; prints the median and worst time from fork to that byte.
# usage: LD_PRELOAD=build/lib/libfdtrack.so:build/lib/libmemtrack.so \
#          /usr/bin/python3 bench/python/forklat.py
import os, socket, time

socks = [socket.socket() for _ in range(50)]
ts = []
for i in range(20):
    r, w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"x")
        os._exit(0)
    os.read(r, 1)
    ts.append(time.monotonic() - t0)
    os.waitpid(pid, 0)
    os.close(r)
    os.close(w)
ts.sort()
print("fork->child runs median %.1f ms max %.1f ms" % (ts[10] * 1e3, ts[-1] * 1e3))
