# json_work.py - dict/JSON-heavy workload for bench/python/run.sh.
import json

docs = []
for round_ in range(6):
    batch = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7), "x"], "score": i * 0.5}
             for i in range(20000)]
    text = json.dumps(batch)
    back = json.loads(text)
    docs.append(back[::100])
print(sum(len(d) for d in docs))
