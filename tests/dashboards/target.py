"""target.py DIR SECONDS - a service that leaks the way the dashboards must
show, run with Debian's python3 under `leakscope run`: it hits EMFILE once
(soft limit lowered to 64, then restored), holds 5 idle TCP connections to
itself (10 established sockets), keeps opening spool files in DIR/spool
without closing them (800 at most, under the usual limit of 1024), and keeps
25 kB buffers alive. It writes its pid to DIR/ready
when the EMFILE and the connections are in place, and exits after SECONDS."""
import os
import resource
import socket
import sys
import time

work, seconds = sys.argv[1], float(sys.argv[2])
os.makedirs(os.path.join(work, "spool"), exist_ok=True)

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
burst = []
try:
    while True:
        burst.append(open(os.devnull))
except OSError:
    pass
for f in burst:
    f.close()
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
pairs = []
for _ in range(5):
    c = socket.create_connection(listener.getsockname())
    s, _ = listener.accept()
    pairs.append((c, s))

with open(os.path.join(work, "ready"), "w") as f:
    f.write(str(os.getpid()))
spool, buffers = [], []
deadline = time.time() + seconds
i = 0
while time.time() < deadline:
    if i < 800:
        spool.append(open(os.path.join(work, "spool", f"job-{i}"), "w"))
        buffers.append(bytearray(25000))
    i += 1
    time.sleep(0.25)
