#!/usr/bin/env bash
# Runs a command with a private throwaway PostgreSQL cluster (tests/e2e/pg.sh)
# in a temporary directory, TLS on, and removes it afterwards, whatever
# happens:
#
#   tests/e2e/with_pg.sh CMD [ARGS...]
#
# The command sees DLCOUNT_TEST_PG (the superuser's URL,
# postgres://dlcount_admin:...@127.0.0.1:PORT/dlcount), DLCOUNT_TEST_PG_CA
# (the CA certificate that verifies the server) and pg.sh's PG_* variables.
# Exits with the command's status (2 if the cluster could not start).
# Bash runs the clean-up trap once the command has ended: a signal sent to
# this script alone waits for that; stop the process group to stop both.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/pg.sh
. "$HERE/pg.sh"

[ $# -ge 1 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

dir=$(mktemp -d /tmp/dlcount-pg.XXXXXX) || exit 2
trap 'pg_cleanup; rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

start=$SECONDS
PG_TLS=1 pg_start "$dir" || { echo "with_pg.sh: could not start PostgreSQL" >&2; exit 2; }
echo "with_pg.sh: PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on 127.0.0.1:$PG_PORT (TLS), cluster in $PG_DIR, up in $((SECONDS - start)) s" >&2
export DLCOUNT_TEST_PG=$PG_URL DLCOUNT_TEST_PG_CA=$PG_CA_FILE

"$@"
