#!/usr/bin/env bash
# lint.sh: our lint passes on dashboards/ and catches each mistake of a
# mutated copy (mutate.py).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
/usr/bin/python3 "$here/lint.py" "$root/dashboards" || exit 1
bad=$(mktemp -d /tmp/lks-dash-bad-XXXXXX)
trap 'rm -rf "$bad"' EXIT
/usr/bin/python3 "$here/mutate.py" "$root/dashboards" "$bad/dashboards"
out=$(/usr/bin/python3 "$here/lint.py" "$bad/dashboards") && { echo "FAIL - lint passed a broken dashboard"; exit 1; }
status=0
for want in "no \$role variable" "rate() over ['5m'], not \$__rate_interval" ": no unit" \
  "hard-coded instance/pid/job matcher" "hard-coded IP address" "without instance=~\"\$instance\"" \
  "id also used by" ": no description"; do
  if grep -qF -- "$want" <<<"$out"; then echo "ok   - lint catches: $want"; else echo "FAIL - lint missed: $want"; status=1; fi
done
exit $status
