"""Known truth for fork-without-exec workers: the parent opens a pool of 50
sockets, then a multiprocessing Pool (fork) of 3 workers maps work and
closes; each worker leaks nothing of its own. Prints the parent's pid."""
import multiprocessing as mp, os, socket

def work(x):
    return x * x

if __name__ == "__main__":
    mp.set_start_method("fork")
    pool_socks = [socket.socket() for _ in range(50)]
    with mp.Pool(3) as p:
        total = sum(p.map(work, range(100)))
    print("parent", os.getpid(), "total", total, "sockets", len(pool_socks), flush=True)

