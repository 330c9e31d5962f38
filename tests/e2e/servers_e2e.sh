#!/usr/bin/env bash
# End-to-end test of several servers counting as one: two private Apache
# instances (front-ends "A" and "B", each with its own dlcount-pipe
# --server A|B) and one private PostgreSQL, real curl, wget and aria2
# downloads on both, a download started on one and resumed on the other, a
# graceful restart of each while a slow download runs, PostgreSQL stopped for
# 20 s in the middle while downloads go on (and a graceful restart of B inside
# that outage: its old logger's input ends while the database is down, so
# what it holds must survive it on local disk, hashed, under B's state
# directory, and be counted by the new logger), then:
#   - `report --json --detail`, `report --json` and `report --json --by
#     server` equal the answer computed from the two Apaches' own plain log
#     files (below: how), polled with a deadline until the loggers have
#     committed;
#   - the same two plain logs imported into a fresh SQLite database (--server
#     A and B) give the same reports: both backends agree;
#   - no client address in PostgreSQL (a pg_dump --data-only, the cluster's
#     data files, dlcount's own table files) nor under the loggers' state
#     directories (also as they were at the end of the outage).
#
# Usage: tests/e2e/servers_e2e.sh [PATH-TO-dlcount-pipe]   (default target/release/dlcount-pipe)
# Run as root on Debian/Ubuntu (it apt-installs apache2 curl wget aria2
# postgresql when missing; scripts/test.sh installs postgresql without a
# system cluster). Nothing of the system's Apache or PostgreSQL is used: both
# Apaches are private instances (tests/e2e/lib.sh) on 127.0.0.1 and free
# ports, PostgreSQL a throwaway cluster (tests/e2e/pg.sh) on 127.0.0.1, TLS
# on, in the test's temporary directory. Output: "ok - NAME" / "not ok - NAME"
# lines, then "N passed, M failed"; the exit status is non-zero if any check
# failed. DLCOUNT_E2E_KEEP=1 keeps the temporary directory (the cluster
# stopped).
#
# The expected answer, as in apache_e2e.sh, is kept independently of dlcount:
# every client call declares what it adds (expect SERVER CLIENT PATH
# [REQUESTS]); the two plain access logs are tallied by a small parser of
# their own (python, below) with the counting rules, checked against that
# model, and supply what a client cannot know in advance (bytes, and how many
# ranges aria2 asked for). Two servers' logs are two streams: every line
# counts as a request; a download is one distinct (client, file, day) over
# both logs, and per server one distinct (client, file, day) within its log.
#
# PostgreSQL privileges (least privilege, as the README's "Several servers"
# setup): the schema is created once by the administrator role (an `import`
# of an empty log, i.e. dlcount's first start, as the owner), and the
# loggers' role gets only CONNECT on the database, USAGE on the schema,
# SELECT/INSERT/UPDATE/DELETE on dlcount's tables (SELECT alone on
# dlcount_schema) and TRUNCATE on day_keys (the purge rewrites it) - no
# CREATE, no ownership (an upgrade of the schema is the administrator's).
# `dlcount-pipe check` as that role must fail before the grants and pass
# after them.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/e2e/pg.sh
. "$HERE/pg.sh"
# shellcheck source=tests/e2e/sandbox.sh
. "$HERE/sandbox.sh" # ok/not_ok/check/check_eq/diag/show/results_summary only

BIN_SRC=$(pa_binary "${1:-}")
[ -x "$BIN_SRC" ] || pa_die "no executable dlcount-pipe at $BIN_SRC (build it: cargo build --release)"
[ "$(id -u)" -eq 0 ] || pa_die "run as root: PostgreSQL runs as the postgres user, the loggers as nobody"

pa_require_tools apache2:/usr/sbin/apache2 curl:curl wget:wget aria2:aria2c python3:python3 openssl:openssl
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || pa_require_tools postgresql:/nonexistent/initdb

# No /etc/dlcount/dlcount.toml of this machine may change what a command sees.
export DLCOUNT_CONFIG=

START=$(date +%s)
T=$(mktemp -d /tmp/dlcount-servers.XXXXXX)
# Apache's workers (nobody), the loggers (nobody) and PostgreSQL (postgres)
# must all reach their parts of it.
chmod 0755 "$T"
BG_PIDS=()

cleanup() {
    local rc=$? pid s
    set +e
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for s in A B; do
        if [ -f "$T/$s/apache/port" ]; then
            pa_select "$T/$s/apache"
            pa_stop
        fi
    done
    # Loggers still alive after their Apache is gone would be a bug the checks
    # report; here they are only cleaned up, found by this run's unique paths.
    for s in A B; do
        for pid in $(pa_pids_with "$T/$s/dlcount.toml"); do kill -KILL "$pid" 2>/dev/null; done
    done
    if [ "${DLCOUNT_E2E_KEEP:-0}" = 1 ]; then
        pg_stop
        pa_log "kept $T"
    else
        pg_cleanup
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_file() { sed 's/^/#   /' "$1"; }
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
absent_from() { ! grep -q "$1" "$2"; }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- the model
# Counting rules (README "How counting works"): a line counts when GET/HEAD,
# status 200/206 and the normalised path ends in .iso; one download per
# (client, path, day) over all servers. The whole run happens on one local
# day (TZ below), so day = run.
declare -A REQ=() DL=() SEEN=() SREQ=() SDL=() SSEEN=()
expect() { # expect SERVER CLIENT PATH [REQUESTS]
    local server=$1 client=$2 path=$3 n=${4:-1}
    REQ[$path]=$((${REQ[$path]:-0} + n))
    SREQ[$server]=$((${SREQ[$server]:-0} + n))
    if [ -z "${SEEN[$client $path]:-}" ]; then
        SEEN[$client $path]=1
        DL[$path]=$((${DL[$path]:-0} + 1))
    fi
    if [ -z "${SSEEN[$server $client $path]:-}" ]; then
        SSEEN[$server $client $path]=1
        SDL[$server]=$((${SDL[$server]:-0} + 1))
    fi
}
# aria2 decides at run time how many ranges it requests (and, given both
# servers, how many from each), so for its (server, client, path) triples the
# requests are read back from the plain logs at the end.
ARIA=()
expect_aria() { # expect_aria SERVER CLIENT PATH
    expect "$1" "$2" "$3" 0
    ARIA+=("$1 $2 $3")
}

# ------------------------------------------------------------- PostgreSQL
# %t is written in Apache's local time and the day matters: run everything
# in a zone where it is about noon now, so the run cannot straddle midnight.
TZ=$(pa_noon_tz)
export TZ
MONTH=$(date +%Y-%m)

mkdir -p "$T/bin" "$T/dl"
# The binary under test is copied so that a rebuild during the run cannot
# swap it under Apache's feet.
cp "$BIN_SRC" "$T/bin/dlcount-pipe"
BIN=$T/bin/dlcount-pipe

if PG_TLS=1 pg_start "$T/pg" 2>"$T/pg-start.err"; then
    ok "private PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') with TLS on 127.0.0.1:$PG_PORT"
else
    not_ok "private PostgreSQL with TLS started"
    show "$(cat "$T/pg-start.err")"
    exit 1
fi
CA=$PG_CA_FILE
LOGGER_ROLE=dlcount_logger
LOGGER_PW=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
pg_create_role "$LOGGER_ROLE" "$LOGGER_PW"
LOGGER_URL=$(pg_url_for "$LOGGER_ROLE" "$LOGGER_PW")
# A verifies the server's name against the CA (verify-full), B the chain only
# (verify-ca); commands of the test itself use verify-full.
URL_A="$LOGGER_URL?sslmode=verify-full"
URL_B="$LOGGER_URL?sslmode=verify-ca"
ADMIN_URL="$PG_ADMIN_URL?sslmode=verify-full"
READ_URL=$URL_A
dl() { timeout 60 "$BIN" "$@"; } # a dlcount command of the test's own, bounded

# Every client address the downloads use (checked for leaks at the end).
declare -a CLIENTS=(127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7)

# ------------------------------------------------------------ the servers
# Both roots hold the same file names (sparse ISOs: no disk, fast on
# loopback), checksum files beside them; each server renders its own pages.
P_DESK=/isos/linuxvillage-24.04-desktop-amd64.iso
P_SRV=/isos/linuxvillage-24.04-server-amd64.iso
P_ARM=/isos/linuxvillage-24.04-server-arm64.iso
P_MIN=/isos/linuxvillage-24.04-minimal-amd64.iso
P_OLD=/isos/old/linuxvillage-22.04-server-amd64.iso
P_NET=/netinst/linuxvillage-netinst-amd64.iso
LOGGER_USER=nobody
LOGGER_GROUP=$(id -gn nobody)

setup_server() { # setup_server NAME DB-URL
    local s=$1 url=$2 d=$T/$1 www=$T/$1/www p
    mkdir -p "$d/apache" "$www/isos/old" "$www/netinst" "$d/state" "$www/.stats"
    truncate -s 512M "$www$P_DESK"
    truncate -s 256M "$www$P_SRV"
    truncate -s 128M "$www$P_ARM"
    truncate -s 16M "$www$P_MIN"
    truncate -s 64M "$www$P_OLD"
    truncate -s 100000000 "$www$P_NET"
    for p in "$P_DESK" "$P_SRV" "$P_ARM" "$P_MIN" "$P_OLD" "$P_NET"; do
        printf '%s  %s\n' "$(printf '%s' "$p" | sha256sum | cut -d' ' -f1)" "${p##*/}" >"$www$p.sha256"
    done
    chmod -R a+rX "$www"
    # The ownership scripts/install.sh sets up, "nobody" standing in for the
    # dlcount account: the state directory private to it, the root writable
    # by its group and sticky, .stats its own.
    chown "$LOGGER_USER:$LOGGER_GROUP" "$d/state" "$www/.stats"
    chmod 0700 "$d/state"
    chgrp "$LOGGER_GROUP" "$www"
    chmod g+w,+t "$www"
    {
        printf 'root = "%s"\nformat = "combined"\next = [".iso"]\n' "$www"
        printf 'site_title = "dlcount servers e2e %s"\nuser = "%s"\n' "$s" "$LOGGER_USER"
        printf 'settle = 2\nrefresh = "2s"\n'
    } >"$d/dlcount.toml"
    # The shipped conf, its install-time paths changed; the binary's place
    # takes the options naming the shared database and this server.
    pa_install_dlcount_conf "$REPO/apache-conf/dlcount.conf" "$d/dlcount.conf" \
        "$BIN --db $url --pg-ca-file $CA --server $s --state-dir $d/state" "$d/dlcount.toml" "$www"
    PA_DIR=$d/apache
    pa_setup "$(pa_free_port)" "$www" "$d/dlcount.conf"
}
# sed replacement text: the URLs hold no '#', '&' or '\' (hex passwords).
case "$URL_A$URL_B$CA$T" in *[\#\&\\]*) pa_die "a path or URL holds a character sed would read" ;; esac
setup_server A "$URL_A"
setup_server B "$URL_B"
logger_args() { # the logger's own options, for check
    printf '%s\n' --config "$T/$1/dlcount.toml" --db "$2" --pg-ca-file "$CA" --server "$1" --state-dir "$T/$1/state"
}
check_as_logger() { # check_as_logger NAME URL: dlcount-pipe check as the logger would run
    local args
    mapfile -t args < <(logger_args "$1" "$2")
    dl check "${args[@]}"
}

# ----------------------------------------------------- schema, privileges
# The schema is created by the administrator (dlcount's first start as the
# owner: an import of an empty log), not by the loggers' role.
: >"$T/empty.log"
mkdir -p "$T/admin-state"
if out=$(dl import --db "$ADMIN_URL" --pg-ca-file "$CA" --state-dir "$T/admin-state" --server setup "$T/empty.log" 2>&1); then
    ok "the administrator creates dlcount's schema (import of an empty log)"
else
    not_ok "the administrator creates dlcount's schema (import of an empty log)"
    show "$out"
    exit 1
fi
rc=0
out=$(check_as_logger A "$URL_A" 2>&1) || rc=$?
if [ "$rc" -ne 0 ] && grep -q "$LOGGER_ROLE" <<<"$out"; then
    ok "check as $LOGGER_ROLE before the grants fails, naming the role"
else
    not_ok "check as $LOGGER_ROLE before the grants fails, naming the role"
    show "exit $rc: $out"
fi
if pg_psql "REVOKE CONNECT, TEMPORARY ON DATABASE $PG_DATABASE FROM PUBLIC;
GRANT CONNECT ON DATABASE $PG_DATABASE TO $LOGGER_ROLE;
GRANT USAGE ON SCHEMA public TO $LOGGER_ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $LOGGER_ROLE;
REVOKE INSERT, UPDATE, DELETE ON dlcount_schema FROM $LOGGER_ROLE;
GRANT TRUNCATE ON day_keys TO $LOGGER_ROLE;" >"$T/grant.out" 2>&1; then
    ok "least privileges granted to $LOGGER_ROLE"
else
    not_ok "least privileges granted to $LOGGER_ROLE"
    show "$(cat "$T/grant.out")"
fi
# What the role may do, as the test ran: no CREATE anywhere, owns nothing.
got=$(pg_psql "SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole,
    has_schema_privilege('$LOGGER_ROLE', 'public', 'CREATE'),
    has_database_privilege('$LOGGER_ROLE', '$PG_DATABASE', 'CREATE'),
    has_database_privilege('$LOGGER_ROLE', '$PG_DATABASE', 'TEMPORARY'),
    (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
    FROM pg_roles r WHERE r.rolname = '$LOGGER_ROLE'" 2>&1 || true)
check_eq "$LOGGER_ROLE: no superuser, CREATE or TEMPORARY, owns nothing" "$got" "f|f|f|f|f|f|0"
for s in A B; do
    url=$URL_A
    [ "$s" = B ] && url=$URL_B
    if out=$(check_as_logger "$s" "$url" 2>&1); then
        ok "check as $LOGGER_ROLE for server $s passes ($( [ "$s" = A ] && echo verify-full || echo verify-ca))"
    else
        not_ok "check as $LOGGER_ROLE for server $s passes"
        show "$out"
    fi
done

# --------------------------------------------------------- both Apaches up
for s in A B; do
    pa_select "$T/$s/apache"
    if out=$(pa_configtest); then ok "apache $s configtest"; else
        not_ok "apache $s configtest"; show "$out"; exit 1
    fi
    pa_start
    ok "private apache $s on 127.0.0.1:$PA_PORT"
done
URL_HTTP_A=http://127.0.0.1:$(cat "$T/A/apache/port")
URL_HTTP_B=http://127.0.0.1:$(cat "$T/B/apache/port")
http_of() { if [ "$1" = A ]; then echo "$URL_HTTP_A"; else echo "$URL_HTTP_B"; fi; }
loggers_of() { pa_pids_with "$T/$1/dlcount.toml" | sort | tr '\n' ' '; }
# Each logger has left root before it reads a line.
sleep 0.5
for s in A B; do
    uid_ok=yes
    [ -n "$(loggers_of "$s")" ] || uid_ok="no logger running"
    for pid in $(loggers_of "$s"); do
        [ "$(awk '/^Uid:/ { print $3 }' "/proc/$pid/status" 2>/dev/null)" = "$(id -u "$LOGGER_USER")" ] || uid_ok=no
    done
    check_eq "logger $s runs as $LOGGER_USER" "$uid_ok" yes
done

# ----------------------------------------------------------------- clients
# Every client has a hard timeout; distinct clients are distinct loopback
# source addresses (Apache on 127.0.0.1 accepts connections from all of
# 127.0.0.0/8).
C1=${CLIENTS[0]} C2=${CLIENTS[1]} C3=${CLIENTS[2]} C4=${CLIENTS[3]}
C5=${CLIENTS[4]} C6=${CLIENTS[5]} C7=${CLIENTS[6]}
cu() { # cu SERVER SOURCE PATH CURL-ARGS...: status code on stdout, body dropped
    local url src=$2 path=$3
    url=$(http_of "$1")
    shift 3
    curl -sS --max-time 60 --interface "$src" -o /dev/null -w '%{http_code}' "$@" "$url$path"
}
cuf() { # cuf SERVER SOURCE FILE PATH CURL-ARGS...: the same, the body saved to FILE
    local url src=$2 file=$3 path=$4
    url=$(http_of "$1")
    shift 4
    curl -sS --max-time 60 --interface "$src" -o "$file" -w '%{http_code}' "$@" "$url$path"
}
wg() { # wg SERVER SOURCE PATH WGET-ARGS...: "complete" when wget succeeded
    local url src=$2 path=$3
    url=$(http_of "$1")
    shift 3
    timeout 60 wget -q --bind-address="$src" "$@" "$url$path" && echo complete
}
aria() { # aria SOURCE OUTFILE URL...: aria2c, 4 connections, 1 MiB pieces
    local src=$1 out=$2
    shift 2
    timeout 60 aria2c -q -x4 -s4 -k1M --interface="$src" --allow-overwrite=true \
        --auto-file-renaming=false -d "${out%/*}" -o "${out##*/}" "$@"
}
# slow_graceful SERVER SOURCE: a download limited to 4 MiB/s (4 s for 16 MiB)
# spans a graceful restart of SERVER; Apache hands new requests to a new
# logger at once and writes the slow download's line to the old one's pipe
# when it ends, seconds later.
slow_graceful() {
    local s=$1 src=$2 slow before after rc=0
    curl -sS --max-time 60 --interface "$src" --limit-rate 4M -o "$T/dl/slow-$s.iso" "$(http_of "$s")$P_MIN" &
    slow=$!
    BG_PIDS+=("$slow")
    sleep 1
    before=$(loggers_of "$s")
    pa_select "$T/$s/apache"
    pa_graceful
    after=$(loggers_of "$s")
    check "graceful restart of $s started a new logger" test "$before" != "$after"
    wait "$slow" || rc=$?
    check_eq "slow download on $s spanning its graceful restart completed" \
        "$rc $(size_of "$T/dl/slow-$s.iso")" "0 $((16 * 1024 * 1024))"
    expect "$s" "$src" "$P_MIN"
}

# Phase 1, PostgreSQL up. Full downloads with curl and wget on both; the
# same client and file on the other server is one more request, no new
# download.
check_eq "A: curl full download 200" "$(cu A "$C1" "$P_SRV")" 200
expect A "$C1" "$P_SRV"
check_eq "B: curl same client and file 200" "$(cu B "$C1" "$P_SRV")" 200
expect B "$C1" "$P_SRV"
check_eq "A: wget full download" "$(wg A "$C2" "$P_ARM" -O /dev/null)" complete
expect A "$C2" "$P_ARM"
check_eq "B: wget full download" "$(wg B "$C3" "$P_ARM" -O /dev/null)" complete
expect B "$C3" "$P_ARM"

# Segmented: aria2 with 4 connections from one server, and from both
# servers at once (a mirror list: its ranges go to A and to B, one download).
aria "$C4" "$T/dl/net-a.iso" "$URL_HTTP_A$P_NET" || true
check_eq "A: aria2c -x4 -s4 complete" "$(size_of "$T/dl/net-a.iso")" 100000000
expect_aria A "$C4" "$P_NET"
aria "$C5" "$T/dl/desk-ab.iso" "$URL_HTTP_A$P_DESK" "$URL_HTTP_B$P_DESK" || true
check_eq "A+B: aria2c segmented over both servers complete" "$(size_of "$T/dl/desk-ab.iso")" $((512 * 1024 * 1024))
expect_aria A "$C5" "$P_DESK"
expect_aria B "$C5" "$P_DESK"

# Started on A, resumed on B: wget -c from a 5 MiB partial file that curl
# fetched from A, and curl -C - on A after a partial from B. Each is one
# download over both servers (and one on each server).
mkdir -p "$T/dl/wget"
check_eq "A: curl first 5 MiB 206" "$(cuf A "$C6" "$T/dl/wget/${P_OLD##*/}" "$P_OLD" --range 0-5242879)" 206
expect A "$C6" "$P_OLD"
check_eq "B: wget -c resumes it" "$(wg B "$C6" "$P_OLD" -c -P "$T/dl/wget")" complete
check_eq "resumed on B: file complete" "$(size_of "$T/dl/wget/${P_OLD##*/}")" $((64 * 1024 * 1024))
expect B "$C6" "$P_OLD"
check_eq "B: curl first MiB 206" "$(cuf B "$C2" "$T/dl/old-c2.iso" "$P_OLD" --range 0-1048575)" 206
expect B "$C2" "$P_OLD"
check_eq "A: curl -C - resumes it 206" "$(cuf A "$C2" "$T/dl/old-c2.iso" "$P_OLD" -C -)" 206
check_eq "resumed on A: file complete" "$(size_of "$T/dl/old-c2.iso")" $((64 * 1024 * 1024))
expect A "$C2" "$P_OLD"

# Not counted: a 404, a checksum file, a POST.
check_eq "A: missing ISO 404" "$(cu A "$C1" /isos/linuxvillage-99.04-amd64.iso)" 404
check_eq "B: checksum file 200" "$(cu B "$C1" "$P_SRV.sha256")" 200
check_eq "A: POST to an ISO 200 (never counted)" "$(cu A "$C1" "$P_MIN" -X POST -d x)" 200

# Graceful restart of A while a slow download runs, then a request on A.
slow_graceful A "$C3"
check_eq "A: request after graceful 206" "$(cu A "$C4" "$P_MIN" --range 0-1023)" 206
expect A "$C4" "$P_MIN"

# The loggers hold their connections over TLS (both sslmodes require it).
got=$(pg_psql "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a
    JOIN pg_stat_ssl s USING (pid) WHERE a.usename = '$LOGGER_ROLE'" 2>&1 || true)
if [ "${got%%|*}" -ge 2 ] 2>/dev/null && [ "${got%%|*}" = "${got#*|}" ]; then
    ok "the loggers' connections use TLS ($got)"
else
    not_ok "the loggers' connections use TLS (connections|with TLS: $got)"
fi

# Phase 2: PostgreSQL stopped for 20 s while downloads go on on both servers.
if pg_stop 2>"$T/pg-stop.err"; then ok "PostgreSQL stopped"; else not_ok "PostgreSQL stopped"; show "$(cat "$T/pg-stop.err")"; fi
outage_start=$(now_ms)
check "report fails while PostgreSQL is down" bash -c '! "$@" >/dev/null 2>&1' _ \
    timeout 30 "$BIN" report --db "$READ_URL" --pg-ca-file "$CA" --json
check_eq "outage: A curl full download 200" "$(cu A "$C7" "$P_ARM")" 200
expect A "$C7" "$P_ARM"
check_eq "outage: B wget full download" "$(wg B "$C7" "$P_SRV" -O /dev/null)" complete
expect B "$C7" "$P_SRV"
aria "$C1" "$T/dl/net-b.iso" "$URL_HTTP_B$P_NET" || true
check_eq "outage: B aria2c -x4 -s4 complete" "$(size_of "$T/dl/net-b.iso")" 100000000
expect_aria B "$C1" "$P_NET"
check_eq "outage: A curl first 2 MiB 206" "$(cuf A "$C5" "$T/dl/srv-c5.iso" "$P_SRV" --range 0-2097151)" 206
expect A "$C5" "$P_SRV"
check_eq "outage: B curl -C - resumes it 206" "$(cuf B "$C5" "$T/dl/srv-c5.iso" "$P_SRV" -C -)" 206
check_eq "outage: resumed on B: file complete" "$(size_of "$T/dl/srv-c5.iso")" $((256 * 1024 * 1024))
expect B "$C5" "$P_SRV"
# A graceful restart of B inside the outage: the old logger's held lines
# must survive it (the slow download ends, and the old logger's input with
# it, while PostgreSQL is still down).
old_b=$(loggers_of B)
slow_graceful B "$C6"
check_eq "outage: B request after graceful 206" "$(cu B "$C3" "$P_DESK" --range 0-1023)" 206
expect B "$C3" "$P_DESK"
check_eq "outage: A HEAD 200" "$(cu A "$C6" "$P_NET" -I)" 200
expect A "$C6" "$P_NET"
# What the state directories hold at the end of the outage, for the leak check.
for s in A B; do cp -a "$T/$s/state" "$T/$s/state-outage"; done
elapsed=$(($(now_ms) - outage_start))
[ "$elapsed" -ge 20000 ] || sleep "$(awk -v ms=$((20000 - elapsed)) 'BEGIN { printf "%.3f", ms / 1000 }')"
still=""
for pid in $old_b; do
    grep -qw "$pid" <<<"$(loggers_of B)" && still="$still $pid"
done
diag "PostgreSQL down for $((($(now_ms) - outage_start) / 1000)) s; B's old logger(s) still running then:${still:- none}"
if pg_start_again "$PG_DIR" 2>"$T/pg-again.err"; then ok "PostgreSQL started again"; else
    not_ok "PostgreSQL started again"; show "$(cat "$T/pg-again.err")"; exit 1
fi

# Phase 3, PostgreSQL back.
check_eq "after: B wget full download" "$(wg B "$C4" "$P_ARM" -O /dev/null)" complete
expect B "$C4" "$P_ARM"
check_eq "after: A curl range 206" "$(cu A "$C7" "$P_NET" --range 0-1048575)" 206
expect A "$C7" "$P_NET"
check_eq "after: B HEAD 200" "$(cu B "$C1" "$P_MIN" -I)" 200
expect B "$C1" "$P_MIN"

# ------------------------------------------------------ the expected answer
model=$T/model.tsv
: >"$model"
for p in "${!REQ[@]}"; do printf 'path\t%s\t%s\t%s\n' "$p" "${DL[$p]}" "${REQ[$p]}" >>"$model"; done
for s in "${!SREQ[@]}"; do printf 'server\t%s\t%s\t%s\n' "$s" "${SDL[$s]}" "${SREQ[$s]}" >>"$model"; done
for a in "${ARIA[@]}"; do printf 'aria\t%s\n' "$a" >>"$model"; done
# The two plain logs, tallied with the counting rules by a parser of their
# own (the lines come from curl, wget and aria2 only).
python3 - "$HERE" "$T/A/apache/logs/access.log" "$T/B/apache/logs/access.log" "$model" "$MONTH" "$T/expected" \
    2>"$T/plainlog.err" <<'PY' || true
import json, sys
sys.path.insert(0, sys.argv[1])
from plainlog import APACHE, cell, counted_lines
log_a, log_b, model, month, out = sys.argv[2:]
paths, servers, seen, sseen, triples = {}, {}, set(), set(), {}
for server, log in (("A", log_a), ("B", log_b)):
    for ip, path, day, key, n in counted_lines(log, APACHE, "%s's plain log" % server):
        for c, who, ident in ((cell(paths, path, key), seen, (ip, path, day)),
                              (cell(servers, server, key), sseen, (server, ip, path, day))):
            if ident not in who:
                who.add(ident)
                c["downloads"] += 1
            c["requests"] += 1
            c["bytes"] += n
        triples[(server, ip, path)] = triples.get((server, ip, path), 0) + 1
want = {"path": {}, "server": {}}
aria = []
for row in open(model):
    f = row.rstrip("\n").split("\t")
    if f[0] == "aria":
        aria.append(tuple(f[1].split(" ")))
    else:
        want[f[0]][f[1]] = [int(f[2]), int(f[3])]
for server, ip, path in aria:
    n = triples.get((server, ip, path), 0)
    if n == 0:
        sys.exit("aria2 from %s sent no counted request for %s to %s" % (ip, path, server))
    want["path"][path][1] += n
    want["server"][server][1] += n
for kind, got in (("path", paths), ("server", servers)):
    if set(got) != set(want[kind]):
        sys.exit("plain logs and model disagree on the %ss: logs %s, model %s" % (kind, sorted(got), sorted(want[kind])))
    for k, (dls, reqs) in want[kind].items():
        if set(got[k]) != {month} or got[k][month]["downloads"] != dls or got[k][month]["requests"] != reqs:
            sys.exit("model and plain logs disagree on %s %s: model %s/%s, logs %s" % (kind, k, dls, reqs, got[k]))
def dump(name, v):
    with open(out + name, "w") as f:
        json.dump(v, f, indent=2, sort_keys=True)
dump("-detail.json", paths)
dump("-plain.json", {p: {m: c["downloads"] for m, c in ms.items()} for p, ms in paths.items()})
dump("-servers.json", servers)
print("aria2 ranges: " + ", ".join("%s %s->%s: %d" % (ip, path.rsplit("/", 1)[1], s, triples[(s, ip, path)]) for s, ip, path in aria), file=sys.stderr)
PY
if [ -s "$T/expected-servers.json" ]; then
    ok "the plain logs of A and B agree with the expected downloads and requests"
    diag "$(cat "$T/plainlog.err")"
else
    not_ok "the plain logs of A and B agree with the expected downloads and requests"
    show "$(cat "$T/plainlog.err")"
fi

# ------------------------------------------------- the loggers' answer
report() { # report NAME ARGS...: report into $T/NAME.json (stderr in NAME.err)
    local name=$1
    shift
    timeout 30 "$BIN" report --db "$READ_URL" --pg-ca-file "$CA" --json "$@" >"$T/$name.json" 2>"$T/$name.err"
}
# Poll until the loggers have committed everything (a deadline, not a sleep:
# held lines are replayed on the loggers' own retry schedule).
deadline=$(($(date +%s) + 90))
waited_from=$(date +%s)
until report got-detail --detail && json_equal "$T/got-detail.json" "$T/expected-detail.json"; do
    [ "$(date +%s)" -lt "$deadline" ] || break
    sleep 0.5
done
if json_equal "$T/got-detail.json" "$T/expected-detail.json"; then
    ok "report --json --detail equals the plain logs' answer (after $(($(date +%s) - waited_from)) s)"
else
    not_ok "report --json --detail equals the plain logs' answer (waited 90 s)"
    diag "expected:"; show_file "$T/expected-detail.json"
    diag "report:"; show_file "$T/got-detail.json"; show_file "$T/got-detail.err"
fi
report got-plain || true
check "report --json equals the plain logs' downloads" json_equal "$T/got-plain.json" "$T/expected-plain.json"
report got-servers --by server || true
if json_equal "$T/got-servers.json" "$T/expected-servers.json"; then
    ok "report --json --by server equals the plain logs' per-server answer"
else
    not_ok "report --json --by server equals the plain logs' per-server answer"
    diag "expected:"; show_file "$T/expected-servers.json"
    diag "report:"; show_file "$T/got-servers.json"; show_file "$T/got-servers.err"
fi
# The resumed downloads by name: P_OLD was only ever fetched by two clients,
# each starting on one server and finishing on the other.
got=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d.get(sys.argv[2], {}).get(sys.argv[3], {}).get("downloads"))' "$T/got-detail.json" "$P_OLD" "$MONTH" 2>/dev/null || true)
check_eq "two downloads started on one server and resumed on the other count 2" "$got" 2

# Each server's statistics cover both servers: its counts.json equals the
# report, also when the last counts came from the other server (refresh is
# 2 s here; the deadline allows for a re-read of the shared database once a
# minute).
for s in A B; do
    deadline=$(($(date +%s) + 65))
    until json_equal "$T/$s/www/.stats/counts.json" "$T/expected-plain.json"; do
        [ "$(date +%s)" -lt "$deadline" ] || break
        sleep 0.5
    done
    check "server $s's .stats/counts.json covers both servers" json_equal "$T/$s/www/.stats/counts.json" "$T/expected-plain.json"
done

# The same plain logs imported into a fresh SQLite database, one --server
# each: both backends give the same figures.
sq=$T/expected.sqlite
if dl import --db "$sq" --server A "$T/A/apache/logs/access.log" >"$T/import.out" 2>&1 &&
    dl import --db "$sq" --server B "$T/B/apache/logs/access.log" >>"$T/import.out" 2>&1; then
    ok "import of both plain logs into SQLite"
else
    not_ok "import of both plain logs into SQLite"
    show "$(cat "$T/import.out")"
fi
dl report --db "$sq" --json --detail >"$T/sqlite-detail.json" 2>>"$T/import.out" || true
dl report --db "$sq" --json --by server >"$T/sqlite-servers.json" 2>>"$T/import.out" || true
check "SQLite import's report --detail equals PostgreSQL's" json_equal "$T/sqlite-detail.json" "$T/got-detail.json"
check "SQLite import's report --by server equals PostgreSQL's" json_equal "$T/sqlite-servers.json" "$T/got-servers.json"

# ------------------------------------------------------------ stop, exit
for s in A B; do
    pa_select "$T/$s/apache"
    pa_stop
    check "loggers of $s exited within 30 s of apache's stop" pa_wait_no_pids_with "$T/$s/dlcount.toml" 30
    check "$s: no AH00106 (logger died) in apache's error log" absent_from AH00106 "$PA_ERRLOG"
    check "$s: no Broken pipe in apache's error log" absent_from "Broken pipe" "$PA_ERRLOG"
    # The outage reached both loggers, and they said so (rate-limited).
    check "$s's logger reported the outage in apache's error log" grep -q '^dlcount: cannot write the database' "$PA_ERRLOG"
    check "$s's logger reported the database writable again" grep -q '^dlcount: database writable again' "$PA_ERRLOG"
    diag "$s's error log, dlcount's lines:"
    show "$(grep '^dlcount: ' "$PA_ERRLOG" | cut -c1-300 || true)"
done
report got-final --detail || true
check "report after the loggers exited still equals the answer" json_equal "$T/got-final.json" "$T/expected-detail.json"

# ------------------------------------------------- no client address leaks
# Where an address could be: the rows (pg_dump --data-only), the cluster's
# files (tables, indexes, TOAST, dead tuples, WAL), and the loggers' state
# directories (now, and as they were at the end of the outage). Searched:
#   - the dump: each client address as text, as its 32-bit integer in
#     decimal (2130706433 for 127.0.0.1), and its 4 raw bytes in both orders
#     inside every bytea value (decoded from the dump's hex);
#   - every file of the cluster's data directory, for the addresses as text,
#     except the configuration and run-time files that name the server's own
#     listen address 127.0.0.1 (postgresql.conf, dlcount-test.conf,
#     pg_hba.conf, pg_ident.conf, postgresql.auto.conf, postmaster.pid,
#     postmaster.opts) - a fresh cluster holds no other;
#   - the files of dlcount's own tables, their indexes and TOAST (what the
#     loggers wrote, dead tuples included), for the 4 raw bytes in both
#     orders. (Not the rest of the cluster: PostgreSQL's own catalogs hold
#     those 4 bytes by coincidence, 7f000001 in a fresh cluster's WAL and
#     pg_internal.init. The chance that the keyed hashes in these few pages
#     hold them by coincidence is about one in 10^5.)
#   - every file under both state directories: the addresses as text and
#     their 4 raw bytes in both orders.
# The server's own log (DIR/log) is not searched: it would name connection
# addresses, the loggers' own 127.0.0.1, not clients'.
"$PG_BIN/pg_dump" -h "$PG_DIR" -p "$PG_PORT" -U "$PG_ADMIN_USER" -d "$PG_DATABASE" \
    --data-only --no-owner >"$T/dump.sql" 2>"$T/dump.err" || true
rows=$(grep -c '^COPY public.visitors ' "$T/dump.sql" || true)
vis=$(pg_psql "SELECT count(*) FROM visitors" 2>/dev/null || echo "?")
check "pg_dump --data-only holds the counted rows (visitors: $vis)" test "$rows" -eq 1 -a "$vis" != 0 -a "$vis" != "?"
mapfile -t relfiles < <(pg_psql "SELECT pg_relation_filepath(c.oid) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')
    UNION SELECT pg_relation_filepath(t.oid) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class t ON t.oid = c.reltoastrelid
    WHERE n.nspname = 'public'
    UNION SELECT pg_relation_filepath(i.indexrelid) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indrelid = c.reltoastrelid
    WHERE n.nspname = 'public'" 2>/dev/null || true)
check "dlcount's table files found (${#relfiles[@]})" test "${#relfiles[@]}" -ge 10
pg_stop 2>/dev/null || true # flushes everything to the files searched below
python3 - "$T" "$PG_DIR/data" "${CLIENTS[*]}" "${relfiles[*]}" >"$T/leaks.out" 2>&1 <<'PY' || true
import ipaddress, os, re, sys
t, data, clients, relfiles = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
texts = [c.encode() for c in clients]
raws = []
for c in clients:
    b = ipaddress.IPv4Address(c).packed
    raws += [b, b[::-1]]
found = []
def search(name, blob, patterns):
    for p in patterns:
        i = blob.find(p)
        if i >= 0:
            found.append("%s: %r at %d" % (name, p, i))
# The dump.
dump = open(os.path.join(t, "dump.sql"), "rb").read()
search("dump", dump, texts)
for c in clients:
    b = ipaddress.IPv4Address(c).packed
    n = int.from_bytes(b, "big")
    if re.search(rb"(?<![0-9])%d(?![0-9])" % n, dump):
        found.append("dump: %s as the integer %d" % (c, n))
nbytea = 0
for m in re.finditer(rb"\\\\x([0-9a-f]+)", dump):
    nbytea += 1
    search("dump bytea #%d" % nbytea, bytes.fromhex(m.group(1).decode()), raws)
# The cluster's files.
skip = {"postgresql.conf", "dlcount-test.conf", "pg_hba.conf", "pg_ident.conf",
        "postgresql.auto.conf", "postmaster.pid", "postmaster.opts"}
nfiles = 0
for root, _, files in os.walk(data):
    for f in files:
        if root == data and f in skip:
            continue
        p = os.path.join(root, f)
        nfiles += 1
        search(os.path.relpath(p, data), open(p, "rb").read(), texts)
nrel = 0
for rel in relfiles:
    base = os.path.join(data, rel)
    for p in [base] + ["%s.%d" % (base, i) for i in range(1, 100)]:
        if not os.path.exists(p):
            break
        nrel += 1
        search(rel, open(p, "rb").read(), raws)
# The state directories.
nstate = 0
for s in ("A", "B"):
    for d in ("state", "state-outage"):
        for root, _, files in os.walk(os.path.join(t, s, d)):
            for f in files:
                p = os.path.join(root, f)
                nstate += 1
                search(os.path.relpath(p, t), open(p, "rb").read(), texts + raws)
print("searched: the dump (%d bytes, %d bytea values), %d cluster files, %d table files, %d state files"
      % (len(dump), nbytea, nfiles, nrel, nstate))
for f in found:
    print("LEAK " + f)
PY
leaks=$(grep -c '^LEAK ' "$T/leaks.out" || true)
if [ "$leaks" = 0 ] && grep -q '^searched: ' "$T/leaks.out"; then
    ok "no client address in PostgreSQL (dump, cluster files) or the loggers' state directories"
    diag "$(cat "$T/leaks.out")"
else
    not_ok "no client address in PostgreSQL (dump, cluster files) or the loggers' state directories"
    show "$(head -n 40 "$T/leaks.out")"
fi
diag "state directories at the end of the outage: $(cd "$T" && find A/state-outage B/state-outage -type f | tr '\n' ' ')"

diag "took $(($(date +%s) - START)) s"
results_summary
