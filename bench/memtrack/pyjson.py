# pyjson.py - workload (c) of the memtrack benchmark: build, dump and load
# JSON documents (run with PYTHONMALLOC=malloc so every object is a malloc).
import json
import sys

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
doc = [{"id": i, "url": "http://example%d.test/page/%d" % (i % 97, i),
        "tags": ["t%d" % (i % 13), "x" * (i % 40)], "meta": {"size": i * 7, "ok": i % 3 == 0}}
       for i in range(60000)]
total = 0
for _ in range(rounds):
    text = json.dumps(doc)
    back = json.loads(text)
    total += len(text) + len(back)
print(total)
