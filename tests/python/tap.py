"""tap.py - what the Python checkers share: "ok   - ..." / "FAIL - ..." lines
that the shell tests count, and the line of a "# LEAK:NAME" marker in the
program under test (ground truth that moves with the program's text)."""
import re

failed = 0


def check(cond, what):
    global failed
    print(("ok   - " if cond else "FAIL - ") + what)
    if not cond:
        failed = 1


def leak_marker(name, path):
    for no, text in enumerate(open(path), 1):
        if re.search(r"# LEAK:%s$" % name, text):
            return no
    raise SystemExit("no # LEAK:%s in %s" % (name, path))
