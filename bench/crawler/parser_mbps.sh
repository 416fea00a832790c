#!/usr/bin/env bash
# Measure HTML link extraction speed (MB/s) of libxml2's SAX parser and of
# gumbo on the synthetic web's pages. Usage: bench/crawler/parser_mbps.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp /tmp/parser_mbps.XXXXXX)
trap 'rm -f "$out"' EXIT
cc -O2 -g -std=gnu11 -Icrawler bench/crawler/parser_mbps.c crawler/links.c crawler/url.c crawler/webgen.c \
    $(pkg-config --cflags --libs libxml-2.0 gumbo libcurl) -lpthread -o "$out"
"$out" "${1:-3}"
