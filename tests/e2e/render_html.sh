# render_html.sh - sourced by e2e tests: render_html PAGE.html OUT.png [WIDTH,HEIGHT]
# renders a page in headless Chromium (Debian's) with the network off, and
# leaves the DOM after load in OUT.png.dom and the browser's console lines
# in OUT.png.console. Returns Chromium's status.
render_html() {
  local page=$1 png=$2 size=${3:-1100,2400} profile
  profile=$(mktemp -d "$TMP/chromium-XXXXXX")
  local flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir="$profile" --enable-logging=stderr --v=0)
  timeout 90 chromium "${flags[@]}" --screenshot="$png" --window-size="$size" "file://$page" \
    >/dev/null 2>"$png.log" || return $?
  timeout 90 chromium "${flags[@]}" --dump-dom "file://$page" >"$png.dom" 2>>"$png.log" || return $?
  # Console messages of the page (errors, failed loads), not the browser's own
  # complaints about D-Bus or GPU on a headless machine.
  grep -E 'CONSOLE|Failed to load resource|net::ERR' "$png.log" >"$png.console" || true
}
