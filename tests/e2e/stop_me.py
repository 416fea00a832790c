# stop_me.py - a traced test program that waits to be stopped. Writes its
# pid to OUT.pid once its handlers are in place, waits (at most 60 s) for
# SIGINT or SIGTERM, counts those that arrive in the half second after the
# first, writes "SIGNAME COUNT" to OUT, then dies of the first signal.
import os, signal, sys, time

out = sys.argv[1]
got = []
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda sig, frame: got.append(sig))
with open(out + ".pid.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(out + ".pid.tmp", out + ".pid")
deadline = time.time() + 60
while not got and time.time() < deadline:
    time.sleep(0.05)
if not got:
    sys.exit(3)
time.sleep(0.5)
with open(out, "w") as f:
    f.write("%s %d\n" % (signal.Signals(got[0]).name, len(got)))
signal.signal(got[0], signal.SIG_DFL)
os.kill(os.getpid(), got[0])
