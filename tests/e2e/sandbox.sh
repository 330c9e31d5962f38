# shellcheck shell=bash
# Shared by tests/e2e/install_e2e.sh and tests/e2e/package_e2e.sh: a root
# sandbox that lets a test install for real without touching the host (and
# the result lines of results.sh).
#
# The sandbox: the test script runs itself again as PID 1 of new mount, net
# and PID namespaces; there it lays overlays over the system folders the
# installation writes, a fresh tmpfs on /run and a loopback-only network.
# Nothing it does reaches the host's processes, network or files outside
# the overlays, which are thrown away with $SANDBOX at the end.
#
# Usage, at the top of a test script (after sourcing this file):
#   sandbox_enter SCRIPT NAME ARGS...   outside: re-runs SCRIPT inside, exits with its status
#   sandbox_overlay DIR...              inside: overlays DIR..., tmpfs /run, lo up
#   ok / not_ok / skip / check / check_eq / diag / show, then results_summary

# sandbox_enter SCRIPT NAME ARGS...: returns only when already inside.
sandbox_enter() {
    local script=$1 name=$2
    shift 2
    [ "${DLCOUNT_SANDBOX:-}" = inside ] && return 0
    SANDBOX=$(mktemp -d "/tmp/dlcount-$name.XXXXXX")
    trap 'rm -rf "$SANDBOX"' EXIT
    local rc=0
    DLCOUNT_SANDBOX=inside SANDBOX=$SANDBOX timeout 600 \
        unshare --mount --net --pid --fork --mount-proc --propagation private \
        bash "$script" "$@" || rc=$?
    exit "$rc"
}

# sandbox_overlay DIR...: from here on this shell is PID 1 of the sandbox.
sandbox_overlay() {
    local d
    for d in "$@"; do
        mkdir -p "$SANDBOX/upper$d" "$SANDBOX/work$d"
        mount -t overlay overlay -o "lowerdir=$d,upperdir=$SANDBOX/upper$d,workdir=$SANDBOX/work$d" "$d"
    done
    mount -t tmpfs tmpfs /run
    mkdir -p /run/lock
    ip link set lo up
}

# The result lines (ok / not_ok / skip / check / check_eq / diag / show /
# results_summary) live in results.sh; a suite sourcing this file gets them.
. "$(dirname "${BASH_SOURCE[0]}")/results.sh"
