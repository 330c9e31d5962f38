#!/usr/bin/env bash
# Browser test of the rendered pages in headless Chromium.
#
#   tests/browser/screenshot.sh [DIR]
#
# Renders the fixture pages into DIR (default: a fresh temp dir) with the
# ignored test helper `render::tests::write_fixture_pages`, serves DIR on
# 127.0.0.1 with python3's http.server (as Apache would serve ROOT), and for
# both pages of a small fixture and a big one (200 images, 10 years):
#   - loads the page, asserts no console messages and that the DOM holds the
#     expected grand total,
#   - asserts the page asked the server for nothing but itself and loads
#     nothing external (no scripts, stylesheets or remote images),
#   - saves screenshots (desktop 1280x900, phone 390x844, desktop dark) to
#     tests/artifacts/.
# Installs chromium with apt when it is missing and we are root.
# Prints TAP-like "ok - …"/"not ok - …" lines and "N passed, M failed".
set -u
cd "$(dirname "$0")/../.."
repo=$(pwd)
artifacts="$repo/tests/artifacts"
mkdir -p "$artifacts"
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1
    chrome=$(command -v chromium || true)
fi
if [ -z "$chrome" ]; then
    not_ok "chromium is available (install it: apt-get install -y chromium)"
    finish
fi
ok "chromium is available ($("$chrome" --version 2>/dev/null | tail -n 1))"

work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

out=${1:-$work/pages}
mkdir -p "$out"
if DLCOUNT_RENDER_DIR="$out" cargo test --quiet --lib render::tests::write_fixture_pages -- --ignored >"$work/cargo.log" 2>&1; then
    ok "fixture pages rendered into $out"
else
    not_ok "fixture pages rendered (see below)"
    cat "$work/cargo.log"
    finish
fi

# A free port chosen by the kernel; the server prints it (unbuffered).
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$out" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
port=""
for _ in $(seq 50); do
    port=$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' "$work/server.out" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    not_ok "http server started"
    finish
fi
base="http://127.0.0.1:$port"

chrome_run() { # chrome_run STDERR_FILE ARGS... ; DOM or screenshot per ARGS
    local err=$1
    shift
    timeout 90 "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$(mktemp -d -p "$work")" --enable-logging=stderr --v=0 \
        --hide-scrollbars "$@" 2>"$err"
}

# Self-test: the console check must see a console error when there is one.
printf '<!doctype html><title>t</title><script>console.error("canary")</script>\n' >"$out/canary.html"
chrome_run "$work/canary.err" --dump-dom "$base/canary.html" >/dev/null
check "console messages are detected (canary)" grep -q 'CONSOLE.*canary' "$work/canary.err"
rm -f "$out/canary.html"

page_test() { # page_test NAME URL_PATH EXPECTED_TEXT
    local name=$1 path=$2 expect=$3
    local dom="$work/$name.html" err="$work/$name.err"
    # The server writes its log without O_APPEND: read what follows, never truncate.
    local seen
    seen=$(wc -l <"$work/server.log")
    chrome_run "$err" --window-size=1280,900 --dump-dom "$base/$path" >"$dom"
    check "$name: page loads" test -s "$dom"
    check "$name: no console messages" bash -c "! grep -q ':CONSOLE' '$err'"
    if ! grep -q ':CONSOLE' "$err"; then :; else grep ':CONSOLE' "$err" | head -n 5; fi
    check "$name: DOM shows $expect" grep -qF -- "$expect" "$dom"
    tail -n +"$((seen + 1))" "$work/server.log" | grep -a '"GET ' >"$work/$name.requests"
    check "$name: served over http" grep -qF "\"GET /$path HTTP" "$work/$name.requests"
    check "$name: nothing requested but the page itself" \
        bash -c "! grep -vF '\"GET /$path HTTP' '$work/$name.requests'"
    check "$name: no scripts, stylesheets or remote resources" \
        bash -c "! grep -qiE '<script|<link[^>]*stylesheet|src=\"(https?:)?//|@import|url\\((https?:)?//' '$dom'"
    chrome_run "$err.1" --window-size=1280,900 --screenshot="$artifacts/$name-desktop.png" "$base/$path" >/dev/null
    check "$name: desktop screenshot" test -s "$artifacts/$name-desktop.png"
    chrome_run "$err.2" --window-size=390,844 --screenshot="$artifacts/$name-phone.png" "$base/$path" >/dev/null
    check "$name: phone screenshot" test -s "$artifacts/$name-phone.png"
    chrome_run "$err.3" --window-size=1280,900 --blink-settings=preferredColorScheme=0 --force-dark-mode \
        --screenshot="$artifacts/$name-dark.png" "$base/$path" >/dev/null
    check "$name: dark screenshot" test -s "$artifacts/$name-dark.png"
}

small_total=$(cat "$out/small.total")
big_total=$(cat "$out/big.total")
page_test public-small small/index.html 'linuxvillage-24.04-amd64.iso'
page_test stats-small small/.stats/index.html "id=\"grand-total\">$small_total<"
page_test public-big big/index.html 'distro-29.9-amd64.iso'
page_test stats-big big/.stats/index.html "id=\"grand-total\">$big_total<"
check "stats-small: chart is an accessible inline SVG" grep -q '<svg[^>]*role="img"' "$work/stats-small.html"
check "stats-small: hostile name stays text" bash -c "grep -qF 'script&gt;.iso' '$work/public-small.html' && ! grep -q '<script' '$work/public-small.html'"
echo "# screenshots: $artifacts"
finish
