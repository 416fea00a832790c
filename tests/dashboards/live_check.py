"""live_check.py PROMETHEUS_URL QUERIES.json - asks a live Prometheus every
dashboard query (exprs.py json) the way Grafana would (range queries over the
last SECONDS, instant ones now) and requires data from each; label_values
variables must yield at least one non-empty value. Prints ok/FAIL lines."""
import json
import sys
import time
import urllib.parse
import urllib.request

url, queries = sys.argv[1], json.load(open(sys.argv[2]))
failed = 0


def api(path, **params):
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
        return json.load(r)


now = time.time()
for q in queries:
    try:
        if q["instant"]:
            res = api("query", query=q["expr"], time=now)["data"]["result"]
        else:
            res = api("query_range", query=q["expr"], start=now - 30, end=now, step=1)["data"]["result"]
        what = f"{len(res)} series"
        good = len(res) > 0
        if q.get("label"):
            values = sorted({r["metric"].get(q["label"], "") for r in res} - {""})
            what = f"{q['label']} = {','.join(values)}"
            good = bool(values)
    except Exception as e:  # a query Prometheus refuses is a failure, with its message
        what, good = f"error {e}", False
    print(f"{'ok  ' if good else 'FAIL'} - {q['where']}: {what}")
    if not good:
        print(f"       {q['expr']}")
        failed += 1
print(f"{len(queries) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
