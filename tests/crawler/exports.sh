#!/usr/bin/env bash
# leakscope names the call sites of descriptors and allocations by function:
# the crawler must export the functions its leaks come from (ENABLE_EXPORTS,
# global, not inlined away).
#   exports.sh BIN_DIR
set -euo pipefail
syms=$(nm -D --defined-only "$1/leakscope-crawler" | awk '$2 == "T" { print $3 }')
status=0
for f in frontier_append frontier_read_batch redis_pool_acquire redis_pool_abandon store_fetch_queue_length \
    fetch_open_socket fetch_page_buffer_grow fetch_write_body fetch_retain_page_context fetch_start_transfer \
    fetch_transfer_done; do
    if ! grep -qx "$f" <<<"$syms"; then
        echo "FAIL: $f is not exported by leakscope-crawler" >&2
        status=1
    fi
done
[ $status = 0 ] && echo "PASS: call-site functions exported"
exit $status
