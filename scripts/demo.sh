#!/usr/bin/env bash
# The main job on the bundled sample: feeds tests/sample/access.log through
# dlcount-pipe's pipe mode (exactly as Apache would), prints the report,
# checks it against the sample's independently known answer, and leaves the
# rendered pages in a demo folder you can open in a browser.
#
#   scripts/demo.sh [OUTPUT_DIR]      (default: ./demo)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-demo}
# shellcheck source=scripts/toolchain.sh
. scripts/toolchain.sh
if ! problem=$(toolchain_problem .); then
    echo "demo: $problem" >&2
    exit 1
fi
# The same build as `cargo test --release` (scripts/test.sh) uses: same
# profile, same features, so the tests reuse every artifact built here.
# cargo shows its progress; a first build takes minutes (SQLite's C source).
echo "== cargo build --release"
cargo build --release
bin=target/release/dlcount-pipe

rm -rf "$out"
mkdir -p "$out/root/isos/24.04" "$out/root/isos/24.10"
# A small download root: sparse ISOs (no disk used) and checksum files.
truncate -s 3G "$out/root/isos/24.04/linuxvillage-24.04-amd64.iso"
truncate -s 2G "$out/root/isos/24.10/linuxvillage-24.10-amd64.iso"
echo "0123456789abcdef  linuxvillage-24.04-amd64.iso" >"$out/root/isos/24.04/linuxvillage-24.04-amd64.iso.sha256"
echo "fedcba9876543210  linuxvillage-24.10-amd64.iso" >"$out/root/isos/24.10/SHA256SUMS"
# Uploaded earlier: a file written in the last --settle seconds is not listed yet.
find "$out/root/isos" -type f -exec touch -d '-10 minutes' {} +

echo "== pipe mode: $(wc -l <tests/sample/access.log) lines of tests/sample/access.log on stdin"
"$bin" --db "$out/dlcount.sqlite" --root "$out/root" --site-title "Linux Village downloads" <tests/sample/access.log
echo
echo "== dlcount-pipe report"
"$bin" report --db "$out/dlcount.sqlite"
echo
"$bin" report --db "$out/dlcount.sqlite" --json --detail >"$out/report.json"
# The comparison ignores formatting: JSON values, not bytes.
if ! command -v python3 >/dev/null; then
    echo "== python3 is missing: report not compared with tests/sample/expected-detail.json" >&2
elif python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)' \
    "$out/report.json" tests/sample/expected-detail.json; then
    echo "== report --json --detail equals the sample's known answer (tests/sample/expected-detail.json)"
else
    echo "== FAIL: report --json --detail differs from tests/sample/expected-detail.json (see $out/report.json)" >&2
    exit 1
fi
"$bin" render --db "$out/dlcount.sqlite" --root "$out/root" --site-title "Linux Village downloads"
echo "== pages: $out/root/index.html and $out/root/.stats/index.html"
