#!/usr/bin/env bash
# The main job on an embedded default: install what is missing, build, and
# run `leakscope demo`: the reference crawler against a private redis-server
# and synthetic web with the Redis pool growth of seed 001 switched on,
# watched live, judged, and written up as an HTML report. Arguments go to
# `leakscope demo` (e.g. --leak frontier-fd, --duration 120).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec ./build/bin/leakscope demo --report leakscope-demo.html --json leakscope-demo.json "$@"
