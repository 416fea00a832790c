#!/usr/bin/python3
"""growing.py MODE SECONDS [PIDFILE] - a program whose descriptors and heap do what MODE
says, at a steady pace, for the live views' tests (Debian's python3, run
under the shims):
  fd-leak     opens a file every 0.1 s and keeps it (plus churn: opens and closes)
  heap-leak   keeps a 64 KiB buffer every 0.1 s (plus churn)
  clean       the same churn, keeps nothing
  plateau     keeps files until it holds 20, then only churns
"""
import os, sys, tempfile, time

mode, seconds = sys.argv[1], float(sys.argv[2])
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as f:
        f.write("%d\n" % os.getpid())
d = tempfile.mkdtemp()
kept, buffers = [], []
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    i += 1
    with open(os.path.join(d, "churn"), "w") as f:
        f.write("x" * (i % 100))
    scratch = bytearray(32768)
    if mode == "fd-leak" or (mode == "plateau" and len(kept) < 20):
        kept.append(open(os.path.join(d, "kept%d" % i), "w"))
    if mode == "heap-leak":
        buffers.append(bytearray(65536))
    del scratch
    time.sleep(0.1)
