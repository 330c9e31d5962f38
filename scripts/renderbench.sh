#!/usr/bin/env bash
# scripts/renderbench.sh — the render budget of the statistics pages (issue
# 14: 10 years × 200 files), measured end to end: the store's read
# (pages::snapshot) and render::render_all, median of RUNS runs after a
# first one that writes every month page (see scripts/renderbench.rs).
#
#   scripts/renderbench.sh [RUNS]             # this tree
#   BASELINE=<commit> scripts/renderbench.sh  # and that commit side by side
#
# The database (about 190 MB: 730,600 file-day rows, 5.8 million fact rows)
# is made once in RENDERBENCH_DIR (default /tmp/dlcount-renderbench) and
# reused; BASELINE builds the same example in a copy of that commit under
# RENDERBENCH_DIR/base. Wall-clock times: on a loaded machine compare the two
# in the same run, not with figures taken another day.
#
# The baseline of record is 6bc2537 (the first statistics pages, which read
# a row per file and day); the README's Benchmarks section has both figures.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
dir=${RENDERBENCH_DIR:-/tmp/dlcount-renderbench}
mkdir -p "$dir"
nice -n 10 cargo build --release --example renderbench
bin=target/release/examples/renderbench
if [[ -n ${BASELINE:-} ]]; then
  base="$dir/base"
  rm -rf "$base" && mkdir -p "$base"
  git archive "$BASELINE" | tar -x -C "$base"
  cp scripts/renderbench.rs "$base/scripts/"
  cp Cargo.toml Cargo.lock "$base/"
  (cd "$base" && nice -n 10 cargo build --release --example renderbench)
  echo "baseline $BASELINE:"
  "$base/target/release/examples/renderbench" "$dir" "$runs"
fi
echo "this tree ($(git rev-parse --short HEAD)):"
"$bin" "$dir" "$runs"
