#!/usr/bin/env bash
# The whole test suite: install what is missing, build (normal and ASan/UBSan),
# run every test with ctest. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" >/dev/null

# Core and its unit tests again under AddressSanitizer + UBSan.
cmake -S . -B build-asan -DLEAKSCOPE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs" --target sanitized_tests >/dev/null

status=0
echo "== unit tests under ASan/UBSan"
(cd build-asan && ctest -L sanitized --output-on-failure) || status=1
echo "== full suite"
(cd build && ctest -j2 --output-on-failure --timeout 300 "$@") || status=1
exit $status
