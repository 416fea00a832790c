#!/usr/bin/env bash
# promtool.sh: the Prometheus configuration, every rule file and every
# dashboard query parse, and every alert fires on growth and stays silent on a
# plateau (rules_test.yml).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
status=0
promtool check config "$root/dashboards/prometheus.yml" || status=1
promtool check rules "$root"/dashboards/rules/*.yml || status=1
promtool test rules "$here/rules_test.yml" || status=1
queries=$(mktemp /tmp/lks-dashboard-queries-XXXXXX.yml)
trap 'rm -f "$queries"' EXIT
/usr/bin/python3 "$here/exprs.py" "$root/dashboards" rules 1m >"$queries" || status=1
echo "dashboard queries:"
out=$(promtool check rules "$queries") || status=1
echo "$out"
# Every panel query, variable and annotation is among them (none lost on the way).
want=$(/usr/bin/python3 -c 'import json, sys, glob
n = 0
for f in glob.glob(sys.argv[1] + "/grafana/*.json"):
    d = json.load(open(f))
    n += sum(len(p.get("targets", [])) for p in d["panels"] + [q for r in d["panels"] for q in r.get("panels", [])])
    n += sum(1 for v in d["templating"]["list"] if v["type"] == "query")
    n += sum(1 for a in d["annotations"]["list"] if a.get("expr"))
print(n)' "$root/dashboards")
grep -q "SUCCESS: $want rules found" <<<"$out" || { echo "FAIL - expected $want dashboard queries"; status=1; }
exit $status
