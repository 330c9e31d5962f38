# shellcheck shell=bash
# A private, throwaway PostgreSQL cluster for the tests (sourced by
# tests/e2e/with_pg.sh and tests/e2e/pg_selftest.sh).
#
# It owns one directory, DIR, and nothing else:
#   DIR/data/        the cluster (initdb), owned by the user that runs it
#   DIR/log/         initdb.log and postgresql.log (the server's stderr)
#   DIR/password     the superuser's random password
#   DIR/tls/         a throwaway CA and the server's certificate (PG_TLS=1)
#   DIR/.s.PGSQL.N   the Unix socket (trust; only its owner and root may use it)
# The server runs the packaged binaries directly (initdb, pg_ctl): no system
# service, no pg_createcluster/pg_ctlcluster, nothing under /etc or
# /var/lib/postgresql is read or written. It listens on 127.0.0.1 only.
# initdb refuses root, so as root the cluster belongs to the `postgres`
# system user (created by Debian's postgresql-common); otherwise to yourself.
#
# Usage: source this file, then
#   [PG_TLS=1] pg_start DIR [PORT]       create, start, export PG_URL & co.
#   pg_psql SQL                          run SQL as the superuser (unaligned)
#   pg_create_role NAME PASSWORD         a LOGIN role, not a superuser
#   pg_url_for NAME PASSWORD             that role's postgres:// URL
#   pg_stop / pg_start_again [DIR]       stop; start the same cluster again
#   pg_cleanup                           stop if running, remove DIR
# Exported by pg_start and pg_start_again:
#   PG_URL, PG_ADMIN_URL  postgres://dlcount_admin:PASSWORD@127.0.0.1:PORT/dlcount
#   PG_DIR, PG_PORT       the cluster's directory and TCP port
#   PG_CA_FILE            the CA certificate to verify the server (TLS only)
#   PG_BIN                the server binaries' directory (set it beforehand
#                         to choose one; default: the newest of
#                         /usr/lib/postgresql/*/bin)
# PG_START_TIMEOUT (seconds, default 60) bounds every wait for readiness.
# All functions return non-zero with a "pg.sh: ..." line on stderr on failure;
# none of them exits the calling shell. They act on one cluster, the last
# started (PG_DIR): start another one in a subshell to keep both.

PG_ADMIN_USER=dlcount_admin
PG_DATABASE=dlcount

# _pg_err MESSAGE...: one "pg.sh: ..." line on stderr, returns 1.
_pg_err() { printf 'pg.sh: %s\n' "$*" >&2; return 1; }

# _pg_find_bin sets PG_BIN to the directory holding initdb, pg_ctl and psql.
_pg_find_bin() {
    local d best=
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/initdb" ] && return 0
        _pg_err "PG_BIN=$PG_BIN has no initdb"
        return 1
    fi
    # Debian/Ubuntu: one directory per major version; take the newest.
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] || continue
        if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n 1)" = "$d" ]; then
            best=$d
        fi
    done
    # Elsewhere the server binaries may be on PATH.
    if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
        best=$(dirname "$(command -v initdb)")
    fi
    [ -n "$best" ] || { _pg_err "no PostgreSQL server found (install the postgresql package)"; return 1; }
    export PG_BIN=$best
}

# _pg_owner prints the user that runs the cluster: postgres when root, else you.
_pg_owner() {
    if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# _pg_as_owner COMMAND...: runs COMMAND as the cluster's owner, from PG_DIR.
_pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

# _pg_need_cluster FUNCTION: fails with a message unless a cluster is selected.
_pg_need_cluster() {
    if [ -z "${PG_DIR:-}" ] || [ -z "${PG_PORT:-}" ] || [ -z "${PG_BIN:-}" ]; then
        _pg_err "$1: no cluster (run pg_start first)"
        return 1
    fi
}

# _pg_random_hex N prints 2N random hex digits (URL- and SQL-safe).
_pg_random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# _pg_port_in_use PORT: true if something accepts connections on 127.0.0.1:PORT.
_pg_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# _pg_pick_port prints a free TCP port on 127.0.0.1, below the kernel's
# ephemeral range so that no outgoing connection takes it meanwhile.
_pg_pick_port() {
    local port _
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 12000))
        _pg_port_in_use "$port" || { echo "$port"; return 0; }
    done
    _pg_err "found no free port"
}

# _pg_conf_quote TEXT prints TEXT as a postgresql.conf string literal.
_pg_conf_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# _pg_urlencode TEXT percent-encodes TEXT for a URL's user or password part.
_pg_urlencode() {
    local LC_ALL=C s=$1 out='' c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
            [A-Za-z0-9._~-]) out+=$c ;;
            *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

# _pg_log_tail prints the last lines of the server log, indented, on stderr.
_pg_log_tail() {
    printf 'pg.sh: last lines of %s:\n' "$PG_DIR/log/postgresql.log" >&2
    tail -n 15 "$PG_DIR/log/postgresql.log" 2>/dev/null | sed 's/^/  | /' >&2
}

# _pg_export DIR sets and exports PG_DIR, PG_PORT, PG_URL, PG_ADMIN_URL and
# PG_CA_FILE from what pg_start recorded in DIR.
_pg_export() {
    local dir=$1
    if [ ! -f "$dir/port" ] || [ ! -f "$dir/password" ]; then
        _pg_err "$dir holds no cluster made by pg.sh"
        return 1
    fi
    export PG_DIR=$dir
    export PG_PORT
    PG_PORT=$(cat "$dir/port")
    export PG_ADMIN_URL PG_URL
    PG_ADMIN_URL=$(pg_url_for "$PG_ADMIN_USER" "$(cat "$dir/password")")
    PG_URL=$PG_ADMIN_URL
    if [ -f "$dir/tls/ca.crt" ]; then
        export PG_CA_FILE=$dir/tls/ca.crt
    else
        unset PG_CA_FILE
    fi
}

# _pg_make_tls DIR writes a throwaway CA and a server certificate for
# localhost and 127.0.0.1 (signed by it) into DIR/tls.
_pg_make_tls() {
    local t=$1/tls
    command -v openssl >/dev/null 2>&1 || { _pg_err "PG_TLS=1 needs openssl (apt-get install openssl)"; return 1; }
    mkdir -p "$t" && chmod 755 "$t" || return 1
    printf '%s\n' 'subjectAltName = DNS:localhost, IP:127.0.0.1' 'basicConstraints = critical, CA:FALSE' \
        'keyUsage = critical, digitalSignature, keyEncipherment' 'extendedKeyUsage = serverAuth' >"$t/server.ext"
    if ! {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$t/ca.key" -out "$t/ca.crt" -days 30 -subj "/CN=dlcount throwaway test CA" \
            -addext 'basicConstraints = critical, CA:TRUE' -addext 'keyUsage = critical, keyCertSign, cRLSign' &&
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout "$t/server.key" -out "$t/server.csr" -subj "/CN=localhost" &&
            openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" \
                -set_serial "0x$(_pg_random_hex 16)" -days 30 -extfile "$t/server.ext" -out "$t/server.crt"
    } >"$1/log/openssl.log" 2>&1; then
        _pg_err "openssl failed: $(tail -n 3 "$1/log/openssl.log")"
        return 1
    fi
    rm -f "$t/server.csr" "$t/server.ext"
    chmod 600 "$t/ca.key" "$t/server.key"
    chmod 644 "$t/ca.crt" "$t/server.crt"
    # The server refuses a key that is not its own (or root's with mode 0640).
    chown "$(_pg_owner)" "$t/server.key"
}

# _pg_write_conf PORT (re)writes DIR/data/dlcount-test.conf, which the
# cluster's postgresql.conf includes last, so these settings win.
_pg_write_conf() {
    local port=$1
    {
        echo "# Written by tests/e2e/pg.sh: a private throwaway test cluster."
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = $(_pg_conf_quote "$PG_DIR")"
        echo "unix_socket_permissions = 0700"
        echo "password_encryption = 'scram-sha-256'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "shared_buffers = 16MB"
        echo "max_connections = 100"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        if [ -f "$PG_DIR/tls/server.crt" ]; then
            echo "ssl = on"
            echo "ssl_cert_file = $(_pg_conf_quote "$PG_DIR/tls/server.crt")"
            echo "ssl_key_file = $(_pg_conf_quote "$PG_DIR/tls/server.key")"
        else
            echo "ssl = off"
        fi
    } >"$PG_DIR/data/dlcount-test.conf"
    chown "$(_pg_owner)" "$PG_DIR/data/dlcount-test.conf"
    printf '%s\n' "$port" >"$PG_DIR/port"
}

# _pg_server_up starts the server of PG_DIR and waits (bounded) until it
# accepts TCP connections; on failure prints the log's tail.
_pg_server_up() {
    local timeout=${PG_START_TIMEOUT:-60} port i
    port=$(cat "$PG_DIR/port")
    # pg_ctl -w returns once the postmaster reports ready, or at once if it exits.
    if ! _pg_as_owner "$PG_BIN/pg_ctl" start -D "$PG_DIR/data" -l "$PG_DIR/log/postgresql.log" \
        -w -t "$timeout" -s >>"$PG_DIR/log/pg_ctl.log" 2>&1; then
        _pg_err "the server in $PG_DIR did not start on 127.0.0.1:$port"
        _pg_log_tail
        return 1
    fi
    for ((i = 0; i < timeout * 10; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -d "$PG_DATABASE" -t 2 && return 0
        sleep 0.1
    done
    _pg_err "the server in $PG_DIR runs but did not accept connections on 127.0.0.1:$port within ${timeout} s"
    _pg_log_tail
    return 1
}

# pg_start DIR [PORT]: creates a cluster in DIR (absent or empty), starts it on
# 127.0.0.1:PORT (default: a free port) and exports PG_URL & co. PG_TLS=1 adds
# a throwaway CA, ssl=on and PG_CA_FILE.
pg_start() {
    local dir=${1:-} port=${2:-} owner password attempt sock
    [ -n "$dir" ] || { _pg_err "usage: pg_start DIR [PORT]"; return 1; }
    _pg_find_bin || return 1
    owner=$(_pg_owner)
    if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
        _pg_err "as root the cluster runs as the postgres user, which does not exist (install postgresql)"
        return 1
    fi
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    if [ -n "$(ls -A "$dir")" ]; then
        _pg_err "$dir is not empty (pg_start_again restarts an existing cluster)"
        return 1
    fi
    # The socket's path must fit in sockaddr_un (107 bytes and a NUL).
    sock="$dir/.s.PGSQL.65535"
    [ "${#sock}" -le 107 ] || { _pg_err "$dir is too long a path for the Unix socket"; return 1; }
    export PG_DIR=$dir
    mkdir -p "$dir/log" || return 1
    chown "$owner" "$dir" "$dir/log" || return 1
    # 0711: others may reach tls/ca.crt; the socket itself is 0700.
    chmod 711 "$dir" || return 1
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -w "$dir"; then
        _pg_err "the postgres user cannot reach $dir (a parent directory is closed to it): use a directory under /tmp"
        return 1
    fi
    password=$(_pg_random_hex 24)
    (umask 077 && printf '%s\n' "$password" >"$dir/password") || return 1
    chown "$owner" "$dir/password"
    if [ "${PG_TLS:-0}" = 1 ]; then
        _pg_make_tls "$dir" || return 1
    fi
    # Trust on the private socket (pg_psql), SCRAM passwords over TCP; this
    # pg_hba.conf replaces initdb's.
    if ! _pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U "$PG_ADMIN_USER" --pwfile="$dir/password" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
        >"$dir/log/initdb.log" 2>&1; then
        _pg_err "initdb failed: $(tail -n 5 "$dir/log/initdb.log")"
        return 1
    fi
    printf '%s\n' "# Written by tests/e2e/pg.sh." \
        "# TYPE  DATABASE  USER  ADDRESS       METHOD" \
        "local   all       all                 trust" \
        "host    all       all   127.0.0.1/32  scram-sha-256" >"$dir/data/pg_hba.conf"
    echo "include 'dlcount-test.conf'" >>"$dir/data/postgresql.conf"
    # A port chosen here may be taken before the server binds it: try another.
    for attempt in 1 2 3 4 5; do
        if [ -n "${2:-}" ]; then
            port=$2
        else
            port=$(_pg_pick_port) || return 1
        fi
        _pg_write_conf "$port" || return 1
        : >"$dir/log/postgresql.log"
        chown "$owner" "$dir/log/postgresql.log"
        if _pg_server_up 2>"$dir/log/start-error"; then
            rm -f "$dir/log/start-error"
            break
        fi
        if [ -z "${2:-}" ] && [ "$attempt" -lt 5 ] && grep -q 'could not bind\|could not create any TCP/IP sockets' "$dir/log/postgresql.log"; then
            continue
        fi
        cat "$dir/log/start-error" >&2
        return 1
    done
    _pg_export "$dir" || return 1
    pg_psql "CREATE DATABASE $PG_DATABASE" postgres >/dev/null || { _pg_err "CREATE DATABASE $PG_DATABASE failed"; return 1; }
}

# pg_start_again [DIR]: starts the stopped cluster of DIR (default PG_DIR) on
# its port, waits until it is ready and exports PG_URL & co. again.
pg_start_again() {
    local dir=${1:-${PG_DIR:-}}
    [ -n "$dir" ] || { _pg_err "pg_start_again: no cluster (give DIR or run pg_start first)"; return 1; }
    _pg_find_bin || return 1
    _pg_export "$dir" || return 1
    _pg_server_up
}

# pg_stop: fast shutdown of PG_DIR's server, waiting until it has exited
# (immediate mode, then SIGKILL, if it takes over a minute). No-op if stopped.
pg_stop() {
    local pid
    [ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
    _pg_find_bin || return 1
    _pg_as_owner "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m fast -w -t 60 -s >>"$PG_DIR/log/pg_ctl.log" 2>&1 && return 0
    _pg_as_owner "$PG_BIN/pg_ctl" status -D "$PG_DIR/data" >/dev/null 2>&1 || return 0
    _pg_err "fast shutdown of $PG_DIR took over 60 s; stopping it at once"
    _pg_as_owner "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m immediate -w -t 30 -s >>"$PG_DIR/log/pg_ctl.log" 2>&1 && return 0
    pid=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    return 1
}

# pg_cleanup: stops the server if it runs and removes PG_DIR; unsets PG_*.
pg_cleanup() {
    local rc=0
    [ -n "${PG_DIR:-}" ] || return 0
    pg_stop || rc=1
    # Only a directory pg_start made: it holds our port and password files.
    if [ -d "$PG_DIR" ] && [ -f "$PG_DIR/port" ] && [ -f "$PG_DIR/password" ]; then
        rm -rf "$PG_DIR" || rc=1
    fi
    unset PG_DIR PG_PORT PG_URL PG_ADMIN_URL PG_CA_FILE
    return "$rc"
}

# pg_psql SQL [DATABASE]: runs SQL as the superuser over the private Unix
# socket (database dlcount by default) and prints the result unaligned.
pg_psql() {
    _pg_need_cluster pg_psql || return 1
    "$PG_BIN/psql" -XAtq -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U "$PG_ADMIN_USER" \
        -d "${2:-$PG_DATABASE}" -c "$1"
}

# pg_create_role NAME PASSWORD: a LOGIN role, not a superuser, that cannot
# create databases or roles; grant it what a test needs with pg_psql. (Since
# PostgreSQL 15 it may not create tables in schema public unless granted.)
pg_create_role() {
    [ $# -eq 2 ] || { _pg_err "usage: pg_create_role NAME PASSWORD"; return 1; }
    _pg_need_cluster pg_create_role || return 1
    # psql quotes the variables itself (:"name" an identifier, :'pw' a literal).
    "$PG_BIN/psql" -XAtq -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U "$PG_ADMIN_USER" \
        -d "$PG_DATABASE" -v name="$1" -v pw="$2" \
        <<<'CREATE ROLE :"name" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'"'pw'"';'
}

# pg_url_for NAME PASSWORD prints postgres://NAME:PASSWORD@127.0.0.1:PORT/dlcount
# (NAME and PASSWORD percent-encoded).
pg_url_for() {
    [ $# -eq 2 ] || { _pg_err "usage: pg_url_for NAME PASSWORD"; return 1; }
    _pg_need_cluster pg_url_for || return 1
    printf 'postgres://%s:%s@127.0.0.1:%s/%s\n' "$(_pg_urlencode "$1")" "$(_pg_urlencode "$2")" "$PG_PORT" "$PG_DATABASE"
}
