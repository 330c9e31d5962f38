#!/usr/bin/env bash
# Browser test of the rendered pages in headless Chromium.
#
#   tests/browser/screenshot.sh [DIR]
#   ONLY=public tests/browser/screenshot.sh   (only the pages whose test name starts so)
#
# Renders the fixture pages into DIR (default: a fresh temp dir) with the
# ignored test helper `render::tests::write_fixture_pages`, serves DIR on
# 127.0.0.1 with python3's http.server (as Apache would serve ROOT), and for
# both pages of a small fixture, one of 50 images in 10 release folders (24
# months, the last 120 days counted per day, so with month pages) and a big
# one (200 images, 10 years, every day counted per day), plus a month page of
# the fifty (stats-fifty-month):
#   - loads the page, asserts no console messages and that the DOM holds the
#     expected grand total,
#   - asserts the page asked the server for nothing but itself and loads
#     nothing external (no scripts, stylesheets or remote images),
#   - measures the page at 390 and 1280 px wide (tests/browser/measure.html
#     loads it in an iframe of that width and measures it with JavaScript):
#     the document is no wider than the screen, and every cell of the public
#     listing (Verify included), every figure of the statistics' by-file
#     table, and each file's name and total in the file × month table lie
#     within the screen and within any box that clips or scrolls them, their
#     text not overflowing them, and so are the per day tables (classes,
#     countries, referring sites), the daily chart and the coverage map;
#     the file × month table shows each file's
#     whole path read across (no rotated or cut names); the number of cells
#     checked is exact,
#   - saves screenshots (desktop 1280x900, phone 390x844, desktop dark) to
#     tests/artifacts/, for the statistics pages also at the by-file table
#     and the file × month table (…-files, …-pivot).
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
if DLCOUNT_RENDER_DIR="$out" cargo test --release --quiet --lib render::tests::write_fixture_pages -- --ignored >"$work/cargo.log" 2>&1; then
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

# wanted NAME: whether ONLY (a prefix of test names, e.g. "public") lets it run.
wanted() { [[ $1 == "${ONLY:-}"* ]]; }

page_test() { # page_test NAME URL_PATH EXPECTED_TEXT
    local name=$1 path=$2 expect=$3
    wanted "$name" || return 0
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

cp tests/browser/measure.html "$out/measure.html"
# layout_test NAME URL_PATH WIDTH GROUP=COUNT...: measures the page at WIDTH
# px; each GROUP must pass with exactly COUNT elements checked, the viewport
# and the document's width always.
layout_test() {
    local name=$1 path=$2 width=$3
    shift 3
    wanted "$name" || return 0
    local dom="$work/$name-$width.measure"
    chrome_run "$work/$name-$width.measure.err" --window-size=1400,1000 \
        --dump-dom "$base/measure.html?page=/$path&width=$width" >"$dom"
    # The lines of <pre id="out" data-done="1">…</pre>.
    sed -n '/<pre id="out"/,/<\/pre>/p' "$dom" | sed 's/<[^>]*>//g' >"$dom.lines"
    check "$name at ${width}px: measured" grep -q 'data-done="1"' "$dom"
    check "$name at ${width}px: viewport is $width px" grep -qx "PASS viewport n=$width" "$dom.lines"
    check "$name at ${width}px: document no wider than the screen" grep -q '^PASS document ' "$dom.lines"
    local g what
    for g in "$@"; do
        case ${g%%=*} in
        pivot-months) what="month headings read across" ;;
        pivot-names) what="file names whole, read across, within the screen" ;;
        *) what="${g%%=*} cells within the screen" ;;
        esac
        check "$name at ${width}px: $what (${g#*=} checked)" grep -qx "PASS ${g%%=*} n=${g#*=}" "$dom.lines"
    done
    if grep -q '^FAIL' "$dom.lines"; then grep '^FAIL' "$dom.lines" | sed 's/^/#   /'; fi
}
# anchor_shots NAME URL_PATH: screenshots scrolled to the by-file and the file ×
# month tables, through measure.html (a page opened at #id comes out blank).
anchor_shots() {
    local name=$1 path=$2 w size table
    wanted "$name" || return 0
    for w in phone:390,844 desktop:1280,900; do
        size=${w#*:}
        for table in files:files-heading pivot:months-heading; do
            chrome_run "$work/$name.shot.err" --window-size="$size" \
                --screenshot="$artifacts/$name-${w%%:*}-${table%%:*}.png" \
                "$base/measure.html?page=/$path&width=${size%,*}&height=${size#*,}&scroll=${table#*:}" >/dev/null
        done
        check "$name: ${w%%:*} screenshots of the tables" \
            test -s "$artifacts/$name-${w%%:*}-files.png" -a -s "$artifacts/$name-${w%%:*}-pivot.png"
    done
}

small_total=$(cat "$out/small.total")
fifty_total=$(cat "$out/fifty.total")
big_total=$(cat "$out/big.total")
page_test public-small small/index.html 'linuxvillage-24.04-amd64.iso'
page_test stats-small small/.stats/index.html "id=\"grand-total\">$small_total<"
page_test public-fifty fifty/index.html 'linuxvillage-25.10-desktop-amd64.iso'
page_test stats-fifty fifty/.stats/index.html "id=\"grand-total\">$fifty_total<"
page_test public-big big/index.html 'distro-29.9-amd64.iso'
page_test stats-big big/.stats/index.html "id=\"grand-total\">$big_total<"
page_test stats-fifty-month fifty/.stats/2026-10.html 'id="month-total">'
check "stats-fifty: month pages linked from the overview" grep -q 'href="2026-10.html"' "$out/fifty/.stats/index.html"
anchor_shots stats-small small/.stats/index.html
anchor_shots stats-fifty fifty/.stats/index.html
# Cells: public 8 images × (name + 4 cells) with --public-counts, 50 × 5, 200 × 4;
# by-file: overview files × (name + 7 cells: downloads, completed, bots, share, trend,
# requests, data sent) + the 7 totals; a month page's files × (name + 5) + the 5 totals.
for w in 390 1280; do
    layout_test public-small small/index.html $w public-cells=40 verify=8
    layout_test stats-small small/.stats/index.html $w by-file=39 pivot-names=4 pivot-totals=4 pivot-months=23
    layout_test public-fifty fifty/index.html $w public-cells=250 verify=50
    layout_test stats-fifty fifty/.stats/index.html $w by-file=407 pivot-names=50 pivot-totals=50 pivot-months=24 values=57 charts=2
    layout_test public-big big/index.html $w public-cells=800 verify=200
    layout_test stats-big big/.stats/index.html $w by-file=1607 pivot-names=200 pivot-totals=200 pivot-months=120 values=54 charts=2
    layout_test stats-fifty-month fifty/.stats/2026-10.html $w by-file=305 values=54 charts=2
done
wanted stats-small && check "stats-small: chart is an accessible inline SVG" grep -q '<svg[^>]*role="img"' "$work/stats-small.html"
wanted public-small && check "public-small: hostile name stays text" bash -c "grep -qF 'script&gt;.iso' '$work/public-small.html' && ! grep -q '<script' '$work/public-small.html'"
# The public listing at both widths (from the layout_test runs above): every
# verify link (own checksums and signatures, and the folder's lists naming the
# image; big: 100 sidecars and the 20 images of releases/9 linked to a list
# whose name is longer than a phone's line) whole on the screen, the folder
# headings too, and the folders in order, newest release first.
public_layout() { # public_layout NAME LINKS ORDER
    local name=$1 links=$2 order=$3 w lines folders
    wanted "$name" || return 0
    folders=$(awk -F' [|] ' '{print NF}' <<<"$order")
    for w in 390 1280; do
        lines="$work/$name-$w.measure.lines"
        check "$name at ${w}px: verify links whole on the screen ($links checked)" grep -qx "PASS verify-links n=$links" "$lines"
        check "$name at ${w}px: folder headings on the screen ($folders checked)" grep -qx "PASS folders n=$folders" "$lines"
        check "$name at ${w}px: folders in order: $order" grep -qxF "ORDER folders $order" "$lines"
        grep '^ORDER' "$lines" | grep -vxF "ORDER folders $order" | sed 's/^/#   got: /'
    done
}
public_layout public-small 8 '/ | /&lt;script&gt;alert(1)&lt; | /isos | /odd'
public_layout public-fifty 50 "$(printf '/releases/%s | ' 25.10 25.04 24.10 24.04 23.10 23.04 22.10 22.04 21.10)/releases/21.04"
public_layout public-big 120 "$(printf '/releases/%s | ' 9 8 7 6 5 4 3 2 1)/releases/0"
echo "# screenshots: $artifacts"
finish
