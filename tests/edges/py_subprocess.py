"""Known truth for Python 3.11: 5 files leaked, then subprocess.run (vfork
in 3.11, the child closes every descriptor it does not pass on), a
prometheus_client-style mmapped *.db file and a real SQLite database.
Prints what it holds, then waits for SIGTERM so a test can `show` it."""
import mmap, os, signal, sqlite3, subprocess, sys

d = sys.argv[1]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
leaked = [open(os.path.join(d, "leak%d.txt" % i), "w") for i in range(5)]
for _ in range(3):
    subprocess.run(["/bin/true"], check=True)
prom = open(os.path.join(d, "counter_123.db"), "a+b")
prom.truncate(4096)
prom_map = mmap.mmap(prom.fileno(), 4096)
db = sqlite3.connect(os.path.join(d, "real.sqlite"))
db.execute("create table if not exists t(x)")
db.commit()
print("pid", os.getpid(), "ready", flush=True)
signal.sigwait({signal.SIGTERM})
