# leaker.py - a traced test program for the series tests. Opens DIR/base.log
# (so the "log" series exists before the leak), writes its pid to DIR/pid,
# waits for DIR/go, opens (and keeps) COUNT .log files one every
# 0.2 s, writes DIR/leaked, then waits for DIR/stop and exits normally.
import os, sys, time

d, count = sys.argv[1], int(sys.argv[2])
base = open(os.path.join(d, "base.log"), "w")
with open(os.path.join(d, "pid.tmp"), "w") as f:
    f.write(str(os.getpid()))
os.rename(os.path.join(d, "pid.tmp"), os.path.join(d, "pid"))
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.05)
held = []
for i in range(count):
    held.append(open(os.path.join(d, "leak%d.log" % i), "w"))
    time.sleep(0.2)
open(os.path.join(d, "leaked"), "w").close()
while not os.path.exists(os.path.join(d, "stop")):
    time.sleep(0.05)
