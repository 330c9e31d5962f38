# shellcheck shell=bash
# Sourced by scripts/demo.sh and scripts/install.sh: is there a Rust
# toolchain new enough to build this project?
#
#   toolchain_problem REPO   prints one line saying what is wrong (cargo
#                            missing, or older than Cargo.toml's
#                            rust-version) and returns 1; prints nothing
#                            and returns 0 when `cargo` will do.
#
# The minimum is read from REPO/Cargo.toml (rust-version), never written down
# twice. Debian 12's own `cargo` package is 1.65, which cannot even read the
# lock file (version 4 needs cargo 1.78): without this check the build fails
# with an error about "lock file version 4", which says nothing about what
# to install.

toolchain_problem() {
    local repo=$1 need have
    need=$(sed -n 's/^rust-version[[:space:]]*=[[:space:]]*"\([0-9.]*\)".*/\1/p' "$repo/Cargo.toml" | head -n 1)
    need=${need:-1.0}
    local how="install a current toolchain with rustup (see README, Install)"
    if ! command -v cargo >/dev/null 2>&1; then
        printf 'cargo not found: dlcount needs Rust %s or newer; %s\n' "$need" "$how"
        return 1
    fi
    # "cargo 1.65.0", "cargo 1.96.0 (f2d3ce0bd 2026-03-21)", "cargo 1.97.0-nightly (...)"
    have=$(cargo --version 2>/dev/null | awk '{ print $2 }')
    have=${have%%-*}
    case $have in
        [0-9]*.[0-9]*) ;;
        *)
            printf 'cargo --version printed no version: dlcount needs Rust %s or newer; %s\n' "$need" "$how"
            return 1
            ;;
    esac
    # sort -V orders 1.9 < 1.65 < 1.89 < 1.89.0 < 1.100 correctly.
    if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]; then
        printf 'cargo %s is too old: dlcount needs Rust %s or newer (Cargo.toml rust-version); %s\n' \
            "$have" "$need" "$how"
        return 1
    fi
    return 0
}
