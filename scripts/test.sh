#!/usr/bin/env bash
# The project's test command (the README's second command; CI runs exactly this).
#
#   scripts/test.sh
#
# 1. installs what the tests need when it is missing (as root on Debian/Ubuntu:
#    apache2, nginx, logrotate, curl, wget, aria2, chromium, python3,
#    sqlite3, openssl and postgresql, the latter without the main cluster
#    Debian would create, nginx without starting its service: the tests run
#    their own instances, never a system service),
# 2. runs the test of the private PostgreSQL helper (tests/e2e/pg_selftest.sh),
# 3. runs the unit and integration tests (`cargo test --release`) under
#    tests/e2e/with_pg.sh: a private throwaway PostgreSQL cluster on loopback
#    with TLS, in DLCOUNT_TEST_PG and DLCOUNT_TEST_PG_CA, removed afterwards,
# 4. runs the browser test (headless Chromium, screenshots in tests/artifacts/),
# 5. runs the end-to-end tests behind a private Apache and a private nginx
#    (counted through `dlcount-pipe listen`) with real clients, the test
#    of `dlcount-pipe follow` under real logrotate, and the two-server test:
#    two private Apaches counting into one private PostgreSQL (stopped for
#    20 s in the middle) with real clients,
# 6. runs the install script's sandboxed test,
# 7. runs the test of the toolchain check (scripts/toolchain.sh),
# 8. builds the Debian package and installs, removes and purges it in a
#    sandbox (last: it is the slowest to set up and disturbs nothing).
# Every suite prints its own "N passed, M failed"; the script ends with the
# overall line and fails if any suite failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

missing=()
for pair in apache2:apache2 nginx:nginx logrotate:logrotate curl:curl wget:wget aria2c:aria2 chromium:chromium \
    python3:python3 sqlite3:sqlite3 gzip:gzip htpasswd:apache2-utils openssl:openssl; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
done
# Debian keeps the PostgreSQL server off PATH, one directory per version.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if [[ " ${missing[*]} " == *" postgresql "* ]]; then
            # The package would create and start a system cluster ("main");
            # postgresql-common's createcluster.conf reads this directory.
            mkdir -p /etc/postgresql-common/createcluster.d
            echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/dlcount-no-main-cluster.conf
        fi
        policy=""
        if [[ " ${missing[*]} " == *" nginx "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
            # nginx's postinst would start the system nginx on port 80 (and
            # fail the install where Apache has it): invoke-rc.d starts no
            # service while policy-rc.d says 101, for this install only.
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 0755 /usr/sbin/policy-rc.d
            policy=/usr/sbin/policy-rc.d
        fi
        installed=0
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null && installed=1
        [ -z "$policy" ] || rm -f "$policy"
        if [ "$installed" = 0 ]; then
            echo "test.sh: apt-get install failed" >&2
            exit 1
        fi
    else
        echo "test.sh: missing ${missing[*]}; run as root on Debian/Ubuntu to install them" >&2
        exit 1
    fi
fi

# shellcheck source=scripts/toolchain.sh
. scripts/toolchain.sh
if ! problem=$(toolchain_problem .); then
    echo "test.sh: $problem" >&2
    exit 1
fi

suites_passed=0
suites_failed=0
run_suite() { # run_suite NAME COMMAND...
    local name=$1
    shift
    echo
    echo "=== $name: $*"
    if "$@"; then
        suites_passed=$((suites_passed + 1))
    else
        echo "=== $name FAILED"
        suites_failed=$((suites_failed + 1))
    fi
}

run_suite "PostgreSQL helper test" tests/e2e/pg_selftest.sh
run_suite "unit and integration tests" tests/e2e/with_pg.sh cargo test --release
run_suite "browser test" tests/browser/screenshot.sh
run_suite "Apache end-to-end test" tests/e2e/apache_e2e.sh target/release/dlcount-pipe
run_suite "nginx end-to-end test" tests/e2e/nginx_e2e.sh target/release/dlcount-pipe
run_suite "follow under logrotate test" tests/e2e/follow_e2e.sh target/release/dlcount-pipe
run_suite "two-server end-to-end test" tests/e2e/servers_e2e.sh target/release/dlcount-pipe
run_suite "install script test" tests/e2e/install_e2e.sh target/release/dlcount-pipe
run_suite "toolchain check test" tests/e2e/toolchain_check.sh
run_suite "Debian package test" tests/e2e/package_e2e.sh target/release/dlcount-pipe

echo
echo "suites: $suites_passed passed, $suites_failed failed"
[ "$suites_failed" -eq 0 ]
