#!/usr/bin/env bash
# End-to-end test of live counting for nginx: a private nginx (Debian's
# package, run from its own prefix and configuration on 127.0.0.1 and a free
# port; the system's nginx is neither configured nor started) with the
# shipped scripts/nginx/dlcount.conf (log_format dlcount, access_log to a
# `dlcount-pipe listen` socket and to nginx's own plain file) and
# scripts/nginx/dlcount-stats.conf (the /.stats/ allow/deny block); real
# curl, wget (-c resume) and aria2c (segmented) downloads; `nginx -s reload`
# while a slow download runs; the listener stopped and started again while
# nginx serves.
#
# The expected answer: every client call declares what it adds (expect
# CLIENT PATH REQUESTS); nginx's own file log is checked against that model
# and gives the bytes. Then, exactly:
#  - live: `report --json --detail` equals the answer of the file log less
#    the lines nginx could not send (its error log says "send() to syslog
#    failed" once per dropped line; the requests made while the listener was
#    stopped are the only ones dropped when nothing else was);
#  - after `dlcount-pipe import` of nginx's file log: the answer of the whole
#    file log, and a second import changes nothing.
#
# Usage: tests/e2e/nginx_e2e.sh [PATH-TO-dlcount-pipe]   (default target/release/dlcount-pipe)
# As root on Debian/Ubuntu it apt-installs nginx curl wget aria2 when missing
# (nginx without starting the system service: see scripts/test.sh).
# Output: "ok - NAME" / "not ok - NAME" lines, then "N passed, M failed".
# DLCOUNT_E2E_KEEP=1 keeps the temporary directory.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/e2e/sandbox.sh
. "$HERE/sandbox.sh"

BIN_SRC=$(pa_binary "${1:-}")
[ -x "$BIN_SRC" ] || pa_die "no executable dlcount-pipe at $BIN_SRC (build it: cargo build --release)"
NGINX=${NGINX:-/usr/sbin/nginx}
[ -x "$NGINX" ] || pa_die "no nginx at $NGINX (apt-get install nginx; scripts/test.sh installs it without starting it)"
pa_require_tools curl:curl wget:wget aria2:aria2c python3:python3

START=$(date +%s)
T=$(mktemp -d /tmp/dlcount-nginx-e2e.XXXXXX)
chmod 0755 "$T"
BG_PIDS=()
NGINX_PID=""
LISTEN_PID=""

cleanup() {
    local rc=$? pid
    set +e
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -TERM "$NGINX_PID"
        wait "$NGINX_PID" 2>/dev/null
    fi
    if [ -n "$LISTEN_PID" ] && kill -0 "$LISTEN_PID" 2>/dev/null; then
        kill -KILL "$LISTEN_PID"
    fi
    if [ "${DLCOUNT_E2E_KEEP:-0}" = 1 ]; then
        pa_log "kept $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

absent_from() { ! grep -q "$1" "$2"; }

# ---------------------------------------------------------------- the model
# shellcheck source=tests/e2e/model.sh
. "$HERE/model.sh"
# aria2 picks its ranges at run time: its requests are read back from the file log.
ARIA_CLIENT=127.0.0.6
# The only client used while the listener is stopped.
OUTAGE_CLIENT=127.0.0.9

# --------------------------------------------------------------- the setup
# nginx writes $time_local in its local time (it keeps TZ for its workers):
# about noon, so the run cannot straddle midnight.
TZ=$(pa_noon_tz)
export TZ
MONTH=$(date +%Y-%m)

WWW=$T/www
STATE=$T/state
RUN=$T/run
NG=$T/nginx
DB=$STATE/dlcount.sqlite
DL_DIR=$T/downloads
mkdir -p "$WWW" "$STATE" "$RUN" "$NG/logs" "$NG/tmp" "$NG/conf.d" "$NG/snippets" "$DL_DIR" "$T/bin"
cp "$BIN_SRC" "$T/bin/dlcount-pipe"
BIN=$T/bin/dlcount-pipe

# As root, nginx's workers and the listener run as nobody (standing in for
# www-data and dlcount): the socket is given to nobody's group, the state and
# run directories to nobody (it removes its socket at exit).
LOGGER_USER=""
NGINX_GROUP=$(id -gn)
if [ "$(id -u)" -eq 0 ]; then
    LOGGER_USER=nobody
    NGINX_GROUP=$(id -gn nobody)
    chown nobody "$STATE" "$RUN"
fi
{
    printf 'db = "%s"\nroot = "%s"\nformat = "nginx_dlcount"\n' "$DB" "$WWW"
    printf 'site_title = "dlcount nginx e2e"\nsettle = 2\n'
    if [ -n "$LOGGER_USER" ]; then printf 'user = "%s"\n' "$LOGGER_USER"; fi
} >"$T/dlcount.toml"
SOCK=$RUN/listen.sock

P_DESK=/isos/linuxvillage-24.04-desktop-amd64.iso
P_SRV=/isos/linuxvillage-24.04-server-amd64.iso
P_ARM=/isos/linuxvillage-24.04-server-arm64.iso
P_MIN=/isos/linuxvillage-24.04-minimal-amd64.iso
P_OLD=/isos/old/linuxvillage-22.04-server-amd64.iso
P_NET=/netinst/linuxvillage-netinst-amd64.iso
mkdir -p "$WWW/isos/old" "$WWW/netinst" "$WWW/.secret" "$WWW/isos/.hidden" "$WWW/.well-known"
truncate -s 1G "$WWW$P_DESK"
truncate -s 256M "$WWW$P_SRV"
truncate -s 128M "$WWW$P_ARM"
truncate -s 16M "$WWW$P_MIN"
truncate -s 64M "$WWW$P_OLD"
truncate -s 100000000 "$WWW$P_NET"
truncate -s 1M "$WWW/isos/.hidden/secret.iso"
printf 'x  linuxvillage-24.04-server-amd64.iso\n' >"$WWW$P_SRV.sha512"
echo "do not serve" >"$WWW/.secret/notes.txt"
echo "token" >"$WWW/.well-known/token"
chmod -R a+rX "$WWW"
if [ -n "$LOGGER_USER" ]; then
    chgrp "$(id -gn nobody)" "$WWW"
    chmod g+w,+t "$WWW"
    mkdir -p "$WWW/.stats"
    chown nobody "$WWW/.stats"
fi

# The shipped snippets, only their install-time paths changed.
sed -e "s#/run/dlcount/listen.sock#$SOCK#g" -e "s#/var/log/nginx/dlcount.log#$NG/logs/dlcount.log#g" \
    "$REPO/scripts/nginx/dlcount.conf" >"$NG/conf.d/dlcount.conf"
cp "$REPO/scripts/nginx/dlcount-stats.conf" "$NG/snippets/dlcount-stats.conf"
PORT=$(pa_free_port)
URL=http://127.0.0.1:$PORT
{
    cat <<EOF
# Private test instance; written by tests/e2e/nginx_e2e.sh.
daemon off;
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 256; }
http {
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    include $NG/conf.d/dlcount.conf;
    server {
        listen 127.0.0.1:$PORT;
        root $WWW;
        index index.html;
        include $NG/snippets/dlcount-stats.conf;
        location / {
            try_files \$uri \$uri/ =404;
        }
    }
}
EOF
    if [ "$(id -u)" -eq 0 ]; then printf 'user nobody %s;\n' "$(id -gn nobody)"; fi
} >"$NG/nginx.conf"
ngx() { "$NGINX" -p "$NG" -c "$NG/nginx.conf" "$@"; }

# ----------------------------------------------------------------- start
start_listener() { # start_listener N
    "$BIN" listen --config "$T/dlcount.toml" --socket "$SOCK" --socket-group "$NGINX_GROUP" \
        2>"$T/listen$1.err" &
    LISTEN_PID=$!
    local _
    for _ in $(seq 1 100); do [ -S "$SOCK" ] && return 0; sleep 0.1; done
    cat "$T/listen$1.err" >&2
    pa_die "the listener did not create $SOCK"
}
stop_listener() { # stop_listener: SIGTERM, wait; its exit code in LISTEN_RC
    LISTEN_RC=0
    kill -TERM "$LISTEN_PID"
    wait "$LISTEN_PID" || LISTEN_RC=$?
    LISTEN_PID=""
}

start_listener 1
check_eq "the socket is 0660 for nginx's group" "$(stat -c '%a %G' "$SOCK")" "660 $NGINX_GROUP"
if out=$(ngx -t 2>&1); then ok "nginx -t accepts the shipped dlcount.conf and dlcount-stats.conf"; else
    not_ok "nginx -t accepts the shipped dlcount.conf and dlcount-stats.conf"; show "$out"; exit 1
fi
ngx &
NGINX_PID=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null --max-time 1 "$URL/" && break
    sleep 0.1
done
check "private nginx answers on 127.0.0.1:$PORT" curl -s -o /dev/null --max-time 5 "$URL/.well-known/token"

# ----------------------------------------------------------------- clients
A=127.0.0.1 B=127.0.0.2 C=127.0.0.3 D=127.0.0.4 E=127.0.0.5
cu() { # cu SOURCE CURL-ARGS...: curl from a source address, status on stdout
    local src=$1
    shift
    curl -sS --max-time 60 --interface "$src" -o /dev/null -w '%{http_code}' "$@"
}
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

check_eq "curl full download 200" "$(cu $A "$URL$P_SRV")" 200
expect $A "$P_SRV"
done_ $A "$P_SRV"
check_eq "wget full download" "$(timeout 60 wget -q --bind-address=$B -O /dev/null "$URL$P_SRV" && echo complete)" complete
expect $B "$P_SRV"
done_ $B "$P_SRV"
check_eq "curl same file again, same client" "$(cu $A "$URL$P_SRV")" 200
expect $A "$P_SRV"
got=$(curl -sS --max-time 120 --interface $B -o /dev/null -w '%{http_code} %{size_download}' "$URL$P_DESK" || true)
check_eq "curl full 1 GiB download" "$got" "200 $((1024 * 1024 * 1024))"
expect $B "$P_DESK"
done_ $B "$P_DESK"

# wget -c: a 5 MiB partial file (made locally) resumed with a range request.
mkdir -p "$DL_DIR/wget"
head -c $((5 * 1024 * 1024)) /dev/zero >"$DL_DIR/wget/${P_OLD##*/}"
timeout 60 wget -q -c --bind-address=$D -P "$DL_DIR/wget" "$URL$P_OLD" || true
check_eq "wget -c resumed file complete" "$(size_of "$DL_DIR/wget/${P_OLD##*/}")" $((64 * 1024 * 1024))
expect $D "$P_OLD" # not complete: its first 5 MiB were never sent

# Segmented: four parallel equal-sized curl ranges (their lines can be
# identical: all must count), and aria2c with four connections.
seg_pids=()
for r in 10000000-29999999 30000000-49999999 50000000-69999999 70000000-89999999; do
    curl -sS --max-time 60 --interface $E --range "$r" -o /dev/null "$URL$P_NET" &
    seg_pids+=("$!")
done
seg_fail=0
for pid in "${seg_pids[@]}"; do wait "$pid" || seg_fail=1; done
check_eq "4 parallel curl ranges" "$seg_fail" 0
expect $E "$P_NET" 4
timeout 60 aria2c -q -x4 -s4 -k1M --interface=$ARIA_CLIENT --allow-overwrite=true \
    -d "$DL_DIR" -o aria.iso "$URL$P_NET" || true
check_eq "aria2c -x4 -s4 complete" "$(size_of "$DL_DIR/aria.iso")" 100000000
expect $ARIA_CLIENT "$P_NET" 0
done_ $ARIA_CLIENT "$P_NET" # its ranges tile the file

check_eq "HEAD 200" "$(cu $A -I "$URL$P_ARM")" 200
expect $A "$P_ARM"
check_eq "escaped path with query 206" "$(cu $A --range 0-0 "$URL/isos/%6cinuxvillage-24.04-server-arm64.iso?from=e2e")" 206
expect $A "$P_ARM"
check_eq "curl partial first part 206" "$(cu $C --range 0-1048575 "$URL$P_ARM")" 206
expect $C "$P_ARM"

# Not counted: 404, 416, a checksum file, a POST (405), a hidden ISO (403).
check_eq "missing ISO 404" "$(cu $A "$URL/isos/linuxvillage-99.04-amd64.iso")" 404
check_eq "unsatisfiable range 416" "$(cu $A --range 999999999999- "$URL$P_DESK")" 416
check_eq "checksum file 200" "$(cu $A "$URL$P_SRV.sha512")" 200
check_eq "POST to an ISO 405 (never counted)" "$(cu $A -X POST -d x "$URL$P_MIN")" 405
check_eq "hidden ISO 403" "$(cu $A "$URL/isos/.hidden/secret.iso")" 403

# nginx -s reload while a slow download runs: the old worker finishes it and
# sends its line over its own connection to the socket.
curl -sS --max-time 60 --interface $B --limit-rate 4M -o "$DL_DIR/min.iso" "$URL$P_MIN" &
slow=$!
BG_PIDS+=("$slow")
sleep 1
ngx -s reload 2>/dev/null
slow_rc=0
wait "$slow" || slow_rc=$?
check_eq "slow download spanning nginx -s reload completed" "$slow_rc $(size_of "$DL_DIR/min.iso")" "0 $((16 * 1024 * 1024))"
expect $B "$P_MIN"
done_ $B "$P_MIN"
check_eq "request after the reload 206" "$(cu $C --range 0-1023 "$URL$P_MIN")" 206
expect $C "$P_MIN"

# The listener stopped while nginx serves: SIGTERM commits what the socket
# held and exits; nginx drops the lines meanwhile and says so.
sleep 0.5
stop_listener
check_eq "listener exits 0 on SIGTERM" "$LISTEN_RC" 0
check "... with its summary" grep -q ' lines, .* counted, .*; exiting$' "$T/listen1.err"
check "... and removed its socket" test ! -e "$SOCK"
OUTAGE=0
for p in "$P_SRV" "$P_ARM" "$P_OLD"; do
    check_eq "request while the listener is stopped 206 ($p)" "$(cu $OUTAGE_CLIENT --range 0-99 "$URL$p")" 206
    expect $OUTAGE_CLIENT "$p"
    OUTAGE=$((OUTAGE + 1))
done
start_listener 2
check_eq "curl after the listener's restart 200" "$(cu $D "$URL$P_MIN")" 200
expect $D "$P_MIN"
done_ $D "$P_MIN"
check_eq "curl range after the listener's restart 206" "$(cu $E --range 0-1023 "$URL$P_DESK")" 206
expect $E "$P_DESK"

# Access rules of the shipped dlcount-stats.conf (the pages exist by now).
for _ in $(seq 1 100); do [ -s "$WWW/.stats/index.html" ] && break; sleep 0.1; done
check_eq "/.stats/ served to 127.0.0.1" "$(cu $A "$URL/.stats/")" 200
check_eq "/.stats/counts.json served to 127.0.0.1" "$(cu $A "$URL/.stats/counts.json")" 200
check_eq "/.stats/ refused to 127.0.0.3" "$(cu $C "$URL/.stats/")" 403
check_eq "/.stats/counts.json refused to 127.0.0.3" "$(cu $C "$URL/.stats/counts.json")" 403
check_eq "/%2estats/ refused to 127.0.0.3" "$(cu $C "$URL/%2estats/counts.json")" 403
check_eq "//.stats/ refused to 127.0.0.3" "$(cu $C --path-as-is "$URL//.stats/")" 403
check_eq "hidden folder refused even to 127.0.0.1" "$(cu $A "$URL/.secret/notes.txt")" 403
check_eq ".well-known served" "$(cu $C "$URL/.well-known/token")" 200
header() { curl -sS --max-time 10 -o /dev/null -D - "$1" | tr -d '\r' | sed -n 's/^[Cc]ache-[Cc]ontrol: //p'; }
check_eq "public page Cache-Control" "$(header "$URL/")" "no-cache"
check_eq "stats page Cache-Control" "$(header "$URL/.stats/")" "private, no-cache"
check_eq "counts.json Cache-Control" "$(header "$URL/.stats/counts.json")" "no-store"

# nginx stops (graceful); then the listener.
ngx -s quit 2>/dev/null
wait "$NGINX_PID" || true
NGINX_PID=""
sleep 0.3
stop_listener
check_eq "restarted listener exits 0 on SIGTERM" "$LISTEN_RC" 0

# ------------------------------------------------------------------ checks
FILE_LOG=$NG/logs/dlcount.log
ERR_LOG=$NG/logs/error.log
DROPPED=$(grep -c 'send() to syslog failed' "$ERR_LOG" || true)
diag "nginx reported $DROPPED dropped line(s); $OUTAGE requests were made while the listener was stopped"
check "nginx reported every request made while the listener was stopped as dropped" test "$DROPPED" -ge "$OUTAGE"

model=$T/model.tsv
: >"$model"
for p in "${!REQ[@]}"; do printf '%s\t%s\t%s\n' "$p" "${DL[$p]}" "${REQ[$p]}" >>"$model"; done
# answer FILE-LOG SKIP-CLIENT: nginx's own file log tallied with the counting
# rules (an independent parser), checked against the model, less the lines
# of SKIP-CLIENT (none: "-"). The model is checked only on the full log.
answer() {
    python3 - "$HERE" "$1" "$model" "$ARIA_CLIENT" "$P_NET" "$MONTH" "$2" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
from plainlog import NGINX_DLCOUNT, cell, counted_lines
log, model, aria_client, aria_path, month, skip = sys.argv[2:]
plain, seen, aria_requests = {}, set(), 0
for ip, path, day, key, nbytes in counted_lines(log, NGINX_DLCOUNT, "nginx's file log"):
    if ip == aria_client and path == aria_path:
        aria_requests += 1
    if ip == skip:
        continue
    c = cell(plain, path, key)
    if (ip, path, day) not in seen:
        seen.add((ip, path, day))
        c["downloads"] += 1
    c["requests"] += 1
    c["bytes"] += nbytes
if skip == "-":
    for row in open(model):
        path, dls, reqs = row.rstrip("\n").split("\t")
        reqs = int(reqs) + (aria_requests if path == aria_path else 0)
        got = plain.get(path, {}).get(month)
        if got is None or got["downloads"] != int(dls) or got["requests"] != reqs:
            sys.exit("model and file log disagree on %s: model %s/%s, log %s" % (path, dls, reqs, got))
    paths = {row.split("\t")[0] for row in open(model)}
    if set(plain) != paths:
        sys.exit("the file log counts paths the model does not: %s" % sorted(set(plain) - paths))
print(json.dumps(plain, indent=2, sort_keys=True))
PY
}
if answer "$FILE_LOG" - >"$T/expected.json" 2>"$T/expected.err"; then
    ok "nginx's file log agrees with the expected downloads and requests"
else
    not_ok "nginx's file log agrees with the expected downloads and requests"
    sed 's/^/# /' "$T/expected.err"
fi
answer "$FILE_LOG" "$OUTAGE_CLIENT" >"$T/expected-live.json" 2>>"$T/expected.err" || true

report() { timeout 60 "$BIN" report --config "$T/dlcount.toml" --json --detail; }
report >"$T/report-live.json" 2>"$T/report.err" || true
if [ "$DROPPED" -eq "$OUTAGE" ]; then
    if json_equal "$T/report-live.json" "$T/expected-live.json"; then
        ok "live: report --json --detail equals nginx's file log less the $OUTAGE dropped lines"
    else
        not_ok "live: report --json --detail equals nginx's file log less the $OUTAGE dropped lines"
        diag "expected:"; sed 's/^/#   /' "$T/expected-live.json"
        diag "report:"; sed 's/^/#   /' "$T/report-live.json" "$T/report.err"
    fi
else
    skip "live: report equals the file log less the dropped lines" \
        "nginx dropped $((DROPPED - OUTAGE)) more line(s) than the outage's (socket queue full); the import below makes it exact"
fi

# Recovery: import of nginx's own file log (as the README says).
rc=0
timeout 120 "$BIN" import --config "$T/dlcount.toml" --quiet "$FILE_LOG" 2>"$T/import.err" || rc=$?
check_eq "import of nginx's file log exits 0" "$rc" 0
report >"$T/report.json" 2>>"$T/report.err" || true
if [ -s "$T/expected.json" ] && json_equal "$T/report.json" "$T/expected.json"; then
    ok "after import: report --json --detail equals nginx's file log"
else
    not_ok "after import: report --json --detail equals nginx's file log"
    diag "expected:"; sed 's/^/#   /' "$T/expected.json"
    diag "report:"; sed 's/^/#   /' "$T/report.json" "$T/report.err" "$T/import.err"
fi
timeout 120 "$BIN" import --config "$T/dlcount.toml" --quiet "$FILE_LOG" 2>>"$T/import.err" || true
report >"$T/report2.json" 2>>"$T/report.err" || true
check "a second import changes nothing" json_equal "$T/report2.json" "$T/expected.json"

# Completed downloads, from $sent_http_content_range and $bytes_sent.
check_completed "$T" "$MONTH" timeout 60 "$BIN" report --config "$T/dlcount.toml" --json --completed

leaks=""
for f in "$DB" "$DB-wal" "$DB-shm"; do
    [ -e "$f" ] || continue
    for ip in $A $B $C $D $E $ARIA_CLIENT $OUTAGE_CLIENT; do
        n=$(grep -a -c -F "$ip" "$f" || true)
        [ "$n" -eq 0 ] || leaks="$leaks ${f##*/}:$ip"
    done
done
check_eq "no client address in the database files" "${leaks:-none}" none

diag "took $(($(date +%s) - START)) s"
results_summary
