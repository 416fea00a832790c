#!/usr/bin/env bash
# schema.sh BUILD_DIR: installs the pinned validator (package-lock.json, npm ci)
# in BUILD_DIR/dashboards-npm and checks every dashboard in dashboards/grafana
# against the JSON schema generated from @grafana/schema's types.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$1/dashboards-npm
mkdir -p "$work"
cp "$here/package.json" "$here/package-lock.json" "$here/validate.js" "$work/"
(cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
node "$work/validate.js" "$root"/dashboards/grafana/*.json

# The check can fail: a dashboard with a misspelt field and a bad enum value.
bad=$(mktemp -d /tmp/lks-dash-bad-XXXXXX)
trap 'rm -rf "$bad"' EXIT
/usr/bin/python3 "$here/mutate.py" "$root/dashboards" "$bad/dashboards"
if out=$(node "$work/validate.js" "$bad"/dashboards/grafana/*.json); then
  echo "FAIL - a broken dashboard passed the schema check"
  exit 1
fi
for want in '"additionalProperty":"fieldconfig"' '/templating/list/1/refresh must be equal to one of the allowed values'; do
  grep -qF -- "$want" <<<"$out" || { echo "FAIL - schema check did not report: $want"; echo "$out"; exit 1; }
done
echo "ok   - a broken dashboard is rejected"
