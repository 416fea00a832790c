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
