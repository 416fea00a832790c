#!/usr/bin/env bash
# The main job on an embedded default: install what is missing, build, and
# run the bundled leaky example under `leakscope run`, printing the summary
# that names each leak's subsystem and call site.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
summary=${1:-build/leaky_fds-summary.json}
echo "== leakscope run -- leaky_fds (200 jobs; leaks frontier files and pool sockets)"
./build/bin/leakscope run --summary "$summary" -- ./build/bin/leaky_fds 200
echo "== summary JSON: $summary"
