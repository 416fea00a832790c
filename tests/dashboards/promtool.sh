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
promtool check rules "$queries" || status=1
exit $status
