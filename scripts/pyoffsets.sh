#!/bin/bash
# pyoffsets.sh - regenerates the rows of core/pyoffsets.h from the headers of
# every CPython found (Debian's and pyenv's). Development tool, not a build
# step: the shim reads interpreters without their headers or debug symbols.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for inc in /usr/include/python3.[0-9]* "$HOME"/.pyenv/versions/3.*/include/python3.*; do
    [ -f "$inc/internal/pycore_pystate.h" ] || continue
    gcc -I"$inc" -I"$inc/internal" "$here/pyoffsets.c" -o "$tmp/off" 2>/dev/null || continue
    row=$("$tmp/off")
    ver=$(head -1 <<<"$row")
    grep -qxF "$ver" "$tmp/seen" 2>/dev/null && continue # one row per minor version
    echo "$ver" >>"$tmp/seen"
    echo "    /* from $inc */"
    echo "$row"
done
