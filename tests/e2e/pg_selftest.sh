#!/usr/bin/env bash
# Test of tests/e2e/pg.sh, the private throwaway PostgreSQL cluster the tests
# run against: it starts (with TLS), takes the superuser's password over TCP
# and refuses a wrong one or none, verifies as verify-full against its own
# CA only, makes a non-superuser role whose URL works, stops and starts again
# on the same port with its data, refuses a port that is taken, and cleanup
# leaves neither a process nor its directory. A second cluster without TLS
# on a given port ends the run.
#
# Usage: tests/e2e/pg_selftest.sh   ("ok - ..." lines, "N passed, M failed")
# As root the cluster runs as the postgres user; otherwise as yourself.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/pg.sh
. "$HERE/pg.sh"
# ok / not_ok / check / check_eq / diag / show / results_summary
# shellcheck source=tests/e2e/sandbox.sh
. "$HERE/sandbox.sh"

# Nothing from the caller's environment may choose TLS or supply a password.
unset PG_TLS PGPASSWORD PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGSSLMODE PGSSLROOTCERT PGOPTIONS
export PGCONNECT_TIMEOUT=10

WORK=$(mktemp -d /tmp/dlcount-pgtest.XXXXXX) || exit 2
chmod 755 "$WORK"
trap 'pg_cleanup >/dev/null 2>&1; rm -rf "$WORK"' EXIT
export PGPASSFILE=$WORK/no-such-pgpass

# q CONNINFO SQL: one query over a connection string; output and errors.
q() { "$PG_BIN/psql" -XAtq -w -d "$1" -c "$2" 2>&1; }
# fails CONNINFO PATTERN: the connection is refused with an error matching PATTERN.
fails() {
    local out
    if out=$(q "$1" 'select 1'); then
        diag "connected, but should not have"
        return 1
    fi
    grep -q "$2" <<<"$out" || { show "$out"; return 1; }
}
# gone PID: the process has exited (a zombie counts as exited), or does
# within 5 s; and no live process is its child.
gone() {
    local _
    for _ in $(seq 1 50); do
        if ! ps -eo pid=,ppid=,stat= | awk -v p="$1" '($1 == p || $2 == p) && $3 !~ /^Z/ {f = 1} END {exit !f}'; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
now_ms() { date +%s%3N; }
postmaster_pid() { head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null; }

# ----------------------------------------------------------- start with TLS
t=$(now_ms)
if PG_TLS=1 pg_start "$WORK/a"; then ok "pg_start with PG_TLS=1"; else not_ok "pg_start with PG_TLS=1"; results_summary; exit 1; fi
diag "started in $(($(now_ms) - t)) ms (initdb, TLS files, start, CREATE DATABASE): PostgreSQL in $PG_BIN"
pw=$(cat "$WORK/a/password")
check_eq "PG_DIR is the directory" "$PG_DIR" "$WORK/a"
check "PG_PORT is a port number" grep -Eqx '[0-9]{4,5}' <<<"$PG_PORT"
check_eq "PG_URL names the admin, password, port and database" "$PG_URL" \
    "postgres://dlcount_admin:$pw@127.0.0.1:$PG_PORT/dlcount"
check_eq "PG_ADMIN_URL is PG_URL" "$PG_ADMIN_URL" "$PG_URL"
check "the password is random (48 hex digits)" grep -Eqx '[0-9a-f]{48}' <<<"$pw"
check "PG_CA_FILE is a CA certificate" grep -q 'BEGIN CERTIFICATE' "${PG_CA_FILE:-/nonexistent}"
check_eq "pg_psql over the Unix socket is the superuser" "$(pg_psql 'select current_user, rolsuper from pg_roles where rolname = current_user')" "dlcount_admin|t"
check_eq "listens on 127.0.0.1 only" "$(pg_psql 'show listen_addresses')" "127.0.0.1"
check_eq "fsync is off" "$(pg_psql 'show fsync')" "off"
check_eq "the socket is in PG_DIR, mode 0700" "$(stat -c %a "$PG_DIR/.s.PGSQL.$PG_PORT" 2>&1)" "700"
check "the server log is in PG_DIR/log" test -s "$PG_DIR/log/postgresql.log"
if [ "$(id -u)" -eq 0 ]; then
    check_eq "as root the cluster belongs to postgres" "$(stat -c %U "$PG_DIR/data")" "postgres"
fi

# ------------------------------------------------------------ authentication
check_eq "TCP with the password (PG_URL)" "$(q "$PG_URL" 'select current_user || $$ $$ || current_database()')" \
    "dlcount_admin dlcount"
check_eq "TLS verify-full to host=localhost with PG_CA_FILE" \
    "$(q "host=localhost port=$PG_PORT user=dlcount_admin dbname=dlcount password=$pw sslmode=verify-full sslrootcert=$PG_CA_FILE" \
        'select ssl from pg_stat_ssl where pid = pg_backend_pid()')" "t"
check_eq "TLS verify-full by PG_URL (127.0.0.1)" \
    "$(q "$PG_URL?sslmode=verify-full&sslrootcert=$PG_CA_FILE" 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')" "t"
mkdir -p "$WORK/other"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/other/ca.key" \
    -out "$WORK/other/ca.crt" -days 1 -subj "/CN=another CA" >/dev/null 2>&1
check "TLS verify-full against another CA is refused" \
    fails "host=localhost port=$PG_PORT user=dlcount_admin dbname=dlcount password=$pw sslmode=verify-full sslrootcert=$WORK/other/ca.crt" \
    'certificate verify failed'
check "a wrong password is refused" fails "$(pg_url_for dlcount_admin "${pw}x")" 'password authentication failed'
check "no password over TCP is refused (no trust on TCP)" \
    fails "host=127.0.0.1 port=$PG_PORT user=dlcount_admin dbname=dlcount" 'no password supplied'

role_pw='p@ss:w/rd %?#&'\''"x'
check "pg_create_role makes a role" pg_create_role app_user "$role_pw"
role_url=$(pg_url_for app_user "$role_pw")
check_eq "its pg_url_for URL logs in over TCP, not as a superuser" \
    "$(q "$role_url" 'select current_user, rolsuper from pg_roles where rolname = current_user')" "app_user|f"
check "its wrong password is refused" fails "$(pg_url_for app_user nope)" 'password authentication failed'

# ---------------------------------------------------------- stop, start again
pg_psql "create table kept (v text); insert into kept values ('written before the stop')"
port=$PG_PORT
pid=$(postmaster_pid)
check "pg_stop" pg_stop
check "the server has exited" gone "$pid"
check "nothing listens on the port" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null"
check "pg_stop again is a no-op" pg_stop
t=$(now_ms)
check "pg_start_again" pg_start_again
diag "started again in $(($(now_ms) - t)) ms"
check_eq "same port" "$PG_PORT" "$port"
check_eq "the data is still there" "$(q "$PG_URL" 'select v from kept')" "written before the stop"
check_eq "the role is still there" "$(q "$role_url" 'select current_user')" "app_user"

# --------------------------------------------------------- a port that is taken
t=$(now_ms)
out=$( (pg_start "$WORK/b" "$PG_PORT") 2>&1)
rc=$?
check "a second cluster on a taken port fails" test "$rc" -ne 0
if grep -q 'could not bind' <<<"$out"; then ok "... saying so, with the log's tail"; else not_ok "... saying so, with the log's tail"; show "$out"; fi
diag "failed in $(($(now_ms) - t)) ms"
rm -rf "$WORK/b"

# ------------------------------------------------------------------- cleanup
dir=$PG_DIR
pid=$(postmaster_pid)
check "pg_cleanup" pg_cleanup
check "the directory is gone" test ! -e "$dir"
check "the server has exited" gone "$pid"
check "PG_URL is unset" test -z "${PG_URL+set}"

# ------------------------------------------ without TLS, on a given port
port=$(_pg_pick_port)
check "pg_start DIR PORT without TLS" pg_start "$WORK/c" "$port"
check_eq "on that port" "${PG_PORT:-}" "$port"
check_eq "ssl is off" "$(pg_psql 'show ssl')" "off"
check "PG_CA_FILE is unset" test -z "${PG_CA_FILE+set}"
check_eq "TCP with the password" "$(q "$PG_URL" 'select 1')" "1"
pid=$(postmaster_pid)
check "pg_cleanup" pg_cleanup
check "the directory is gone" test ! -e "$WORK/c"
check "the server has exited" gone "$pid"

results_summary
