# children_child.py - the child side of children_app.py, for
# test_python_children.sh: keeps N files open at its "# LEAK:child" line,
# writes what the kernel says it holds (DIR/ROLE.truth: pid, ppid, every
# /proc/self/fd link), then ends with os._exit (no finalizer closes them).
#   python3 children_child.py ROLE DIR N     (as a subprocess)
import json
import os
import sys

held = []


def keep_files(role, d, n):
    for i in range(n):
        held.append(open(os.path.join(d, "%s.%d" % (role, i)), "w"))  # LEAK:child


def truth(role, d):
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass  # the listing's own descriptor, closed by now
    text = json.dumps({"role": role, "pid": os.getpid(), "ppid": os.getppid(), "fds": fds})
    fd = os.open(os.path.join(d, role + ".truth"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)


def work(role, d, n):
    keep_files(role, d, n)
    truth(role, d)
    os._exit(0)


if __name__ == "__main__":
    work(sys.argv[1], sys.argv[2], int(sys.argv[3]))
