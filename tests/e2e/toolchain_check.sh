#!/usr/bin/env bash
# The toolchain check of scripts/demo.sh and scripts/install.sh
# (scripts/toolchain.sh): a cargo older than Cargo.toml's rust-version, or
# none at all, stops them with one line saying what to install, before any
# build starts. Fake `cargo` programs on PATH stand in for Debian 12's cargo
# 1.65 and others; they log every call, so the test also sees that no build
# was attempted.
#
# Also checks that Cargo.toml's rust-version is the real minimum: the highest
# rust-version declared by the packages built on this platform (what `cargo
# metadata` reports), so that the number the scripts print is true.
#
# Usage: tests/e2e/toolchain_check.sh   ("ok - ..." lines, "N passed, M failed")
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO" || exit 2

# shellcheck source=tests/e2e/results.sh
. "$HERE/results.sh"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The minimum as Cargo.toml states it (parsed here with Python's TOML reader,
# not with the scripts' sed).
NEED=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["rust-version"])')

# The real minimum: max rust-version of every package of the resolved graph
# for this host (the project's own code is built by the same toolchain).
host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
if [ -n "$host" ] && meta=$(cargo metadata --format-version 1 --locked --filter-platform "$host" 2>/dev/null); then
    real=$(python3 -c '
import json, sys
m = json.load(sys.stdin)
used = {n["id"] for n in m["resolve"]["nodes"]}
root = m["resolve"]["root"]
vs = [tuple(int(x) for x in p["rust_version"].split("."))
      for p in m["packages"] if p["id"] in used and p["id"] != root and p.get("rust_version")]
v = max(vs)
print(".".join(map(str, v[:2] if len(v) == 3 and v[2] == 0 else v)))' <<<"$meta")
    check_eq "Cargo.toml rust-version is the highest rust-version of the dependencies" "$NEED" "$real"
else
    not_ok "cargo metadata failed (needs a working cargo and the registry index)"
fi

# fake_cargo DIR VERSION-LINE: a `cargo` that prints VERSION-LINE for
# --version, logs every call, and fails anything else.
fake_cargo() {
    mkdir -p "$1"
    cat >"$1/cargo" <<EOF
#!/bin/sh
echo "cargo \$*" >>"$1/calls"
if [ "\$1" = --version ]; then echo "$2"; exit 0; fi
echo "fake cargo: \$*" >&2
exit 101
EOF
    chmod +x "$1/cargo"
}

HOW="install a current toolchain with rustup (see README, Install)"

# Debian 12's own package.
fake_cargo "$WORK/old" "cargo 1.65.0"
out=$(PATH="$WORK/old:$PATH" scripts/demo.sh "$WORK/demo" 2>&1)
rc=$?
check_eq "demo.sh, cargo 1.65: exit 1" "$rc" 1
check_eq "demo.sh, cargo 1.65: one line saying what to do" "$out" \
    "demo: cargo 1.65.0 is too old: dlcount needs Rust $NEED or newer (Cargo.toml rust-version); $HOW"
check_eq "demo.sh, cargo 1.65: no build attempted" "$(cat "$WORK/old/calls")" "cargo --version"

: >"$WORK/old/calls"
if [ "$(id -u)" -eq 0 ] && command -v apache2ctl >/dev/null 2>&1; then
    out=$(PATH="$WORK/old:$PATH" scripts/install.sh --dry-run --root "$WORK/root" 2>&1)
    rc=$?
    check_eq "install.sh, cargo 1.65: exit 1" "$rc" 1
    check_eq "install.sh, cargo 1.65: one line saying what to do" "$out" \
        "dlcount-install: error: cargo 1.65.0 is too old: dlcount needs Rust $NEED or newer (Cargo.toml rust-version); $HOW, or build elsewhere and pass --binary PATH"
    check_eq "install.sh, cargo 1.65: no build attempted" "$(cat "$WORK/old/calls")" "cargo --version"
    out=$(PATH="$WORK/old:$PATH" scripts/install.sh --dry-run --binary /bin/true --root "$WORK/root" 2>&1)
    check_eq "install.sh --binary: no toolchain needed" "$(grep -c 'too old' <<<"$out")" 0
else
    echo "# install.sh part needs root and apache2 (scripts/test.sh installs it)"
    not_ok "install.sh toolchain check not run"
fi

# The boundary, through the function both scripts use.
. scripts/toolchain.sh
verdict() { # verdict VERSION-LINE: what toolchain_problem says for it
    rm -rf "$WORK/v"
    fake_cargo "$WORK/v" "$1"
    PATH="$WORK/v:$PATH" toolchain_problem "$REPO" && echo fine
}
prev=$(python3 -c 'import sys; a, b = sys.argv[1].split(".")[:2]; print(f"{a}.{int(b) - 1}.9")' "$NEED")
check_eq "cargo $NEED.0 is enough" "$(verdict "cargo $NEED.0 (abc 2025-01-01)")" fine
check_eq "cargo $prev is not" "$(verdict "cargo $prev")" \
    "cargo $prev is too old: dlcount needs Rust $NEED or newer (Cargo.toml rust-version); $HOW"
check_eq "a nightly newer than that is enough" "$(verdict "cargo 1.200.0-nightly (abc 2030-01-01)")" fine
check_eq "a cargo that prints no version" "$(verdict "something else")" \
    "cargo --version printed no version: dlcount needs Rust $NEED or newer; $HOW"

# No cargo at all (only where none is installed system-wide, since a PATH
# cannot hide /usr/bin).
nocargo=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
if PATH=$nocargo command -v cargo >/dev/null 2>&1; then
    echo "# a system-wide cargo exists: the no-cargo case cannot be arranged here"
else
    out=$(PATH=$nocargo scripts/demo.sh "$WORK/demo" 2>&1)
    rc=$?
    check_eq "demo.sh without cargo: exit 1 and one line" "$rc $out" \
        "1 demo: cargo not found: dlcount needs Rust $NEED or newer; $HOW"
fi

results_summary
