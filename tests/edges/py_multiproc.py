"""Known truth for fork-without-exec workers: the parent opens a pool of 50
sockets, then a multiprocessing Pool (fork) of 3 workers maps work and
closes; each worker leaks nothing of its own. Prints the parent's pid and
the pids of the workers that did work (a worker the pool terminates before it
ran anything may be killed inside the shim's fork setup and leave no trace)."""
import multiprocessing as mp, os, socket

def work(x):
    return x * x, os.getpid()

if __name__ == "__main__":
    mp.set_start_method("fork")
    pool_socks = [socket.socket() for _ in range(50)]
    with mp.Pool(3) as p:
        results = p.map(work, range(100))
    total = sum(r for r, _ in results)
    workers = sorted({pid for _, pid in results})
    print("parent", os.getpid(), "total", total, "sockets", len(pool_socks), flush=True)
    print("workers", " ".join(map(str, workers)), flush=True)

