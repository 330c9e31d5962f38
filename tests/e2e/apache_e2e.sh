#!/usr/bin/env bash
# End-to-end test: a private Apache, the shipped apache-conf/dlcount.conf,
# real download clients (curl, wget, aria2), graceful/restart/stop, and the
# counts that `dlcount-pipe report` prints afterwards.
#
# Usage: tests/e2e/apache_e2e.sh [PATH-TO-dlcount-pipe]   (default target/release/dlcount-pipe)
# Run as root on Debian/Ubuntu (it apt-installs apache2 curl wget aria2 when
# missing). The system's Apache is neither configured nor started: the test
# runs its own instance (tests/e2e/lib.sh) on 127.0.0.1 and a free port.
# Output: one "ok - NAME" / "not ok - NAME" line per check, then
# "N passed, M failed"; the exit status is non-zero if any check failed.
# DLCOUNT_E2E_KEEP=1 keeps the temporary directory for inspection.
# `tests/e2e/apache_e2e.sh tests/e2e/standin-dlcount-pipe` runs the harness
# against a small stand-in logger (see that file), to work on the test itself.
#
# The expected answer is kept independently in this script: every client call
# below declares what it must add (expect CLIENT PATH REQUESTS). Apache's own
# plain access log of the same vhost is checked against that model, and then
# supplies the one figure a client cannot know in advance: bytes (%O counts
# the headers too, and what an aborted transfer had sent when it died).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/e2e/results.sh
. "$HERE/results.sh"

BIN_SRC=$(pa_binary "${1:-}")
[ -x "$BIN_SRC" ] || pa_die "no executable dlcount-pipe at $BIN_SRC (build it: cargo build --release)"

pa_require_tools apache2:/usr/sbin/apache2 curl:curl wget:wget aria2:aria2c python3:python3

START=$(date +%s)
T=$(mktemp -d /tmp/dlcount-e2e.XXXXXX)
# Apache's workers run as "nobody" when the test runs as root: they must be
# able to walk down to the download root.
chmod 0755 "$T"
BG_PIDS=()

cleanup() {
    local rc=$? pid
    set +e
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    [ -n "${PA_PIDFILE:-}" ] && pa_stop
    # Loggers still alive after Apache is gone would be a bug the checks
    # report; here they are only cleaned up, found by this run's unique
    # config path.
    for pid in $(pa_pids_with "$T/dlcount.toml"); do kill -KILL "$pid" 2>/dev/null; done
    if [ "${DLCOUNT_E2E_KEEP:-0}" = 1 ]; then
        pa_log "kept $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# grep reads the whole page (no -q): quitting at the first match would leave
# curl writing into a closed pipe, a failure under pipefail.
page_lists() { curl -sS --max-time 10 "$1" | grep -F "$2" >/dev/null; }
is_json() { curl -sS --max-time 10 "$1" | python3 -c 'import json, sys; json.load(sys.stdin)'; }
absent_from() { ! grep -q "$1" "$2"; }

# ---------------------------------------------------------------- the model
# shellcheck source=tests/e2e/model.sh
. "$HERE/model.sh"
# aria2 decides at run time how many ranges it requests (it re-splits
# segments when a connection finishes early), so for its one (client, path)
# pair the number of requests is read back from Apache's plain log at the end.
ARIA_CLIENT=127.0.0.6

# ------------------------------------------------------------ the instance
# %t is written in Apache's local time and the day matters: run Apache in a
# zone where it is about noon now, so the run cannot straddle midnight.
TZ=$(pa_noon_tz)
export TZ
MONTH=$(date +%Y-%m)

PA_DIR=$T/apache
WWW=$T/www
STATE=$T/state
DB=$STATE/dlcount.sqlite
DL_DIR=$T/downloads
mkdir -p "$PA_DIR" "$WWW" "$STATE" "$DL_DIR" "$T/bin"
# The binary under test is copied so that a rebuild during the run cannot
# swap it under Apache's feet (and so the stand-in and the real binary are
# started the same way).
cp "$BIN_SRC" "$T/bin/dlcount-pipe"
BIN=$T/bin/dlcount-pipe

# The logger's configuration: the test's database and root, the defaults
# otherwise. As root, the logger drops to "nobody" (standing in for the
# dlcount account, which the test does not create) with the ownership
# scripts/install.sh sets up: state directory owned by it, download root
# group-writable and sticky for its group, .stats owned by it.
LOGGER_USER=""
LOGGER_GROUP=""
if [ "$(id -u)" -eq 0 ]; then
    LOGGER_USER=nobody
    LOGGER_GROUP=$(id -gn nobody)
fi
{
    printf 'db = "%s"\nroot = "%s"\nformat = "dlcount"\next = [".iso"]\n' "$DB" "$WWW"
    printf 'site_title = "dlcount e2e"\n'
    # ISOs are created moments before the check: a short settle time keeps the test fast.
    printf 'settle = 2\n'
    if [ -n "$LOGGER_USER" ]; then printf 'user = "%s"\n' "$LOGGER_USER"; fi
} >"$T/dlcount.toml"

# The shipped conf, only its install-time paths changed.
pa_install_dlcount_conf "$REPO/apache-conf/dlcount.conf" "$T/dlcount.conf" "$BIN" "$T/dlcount.toml" "$WWW"

# The download tree: sparse ISOs (they cost no disk and stream fast on
# loopback), checksum files beside them, one realistic 3 GiB image so that
# byte counts pass 2^31, hidden and .well-known content for the access rules.
P_DESK=/isos/linuxvillage-24.04-desktop-amd64.iso
P_SRV=/isos/linuxvillage-24.04-server-amd64.iso
P_ARM=/isos/linuxvillage-24.04-server-arm64.iso
P_MIN=/isos/linuxvillage-24.04-minimal-amd64.iso
P_OLD=/isos/old/linuxvillage-22.04-server-amd64.iso
P_NET=/netinst/linuxvillage-netinst-amd64.iso
P_NEW=/isos/linuxvillage-24.10-server-amd64.iso
mkdir -p "$WWW/isos/old" "$WWW/netinst" "$WWW/.secret" "$WWW/.well-known/acme-challenge" "$WWW/isos/.hidden"
truncate -s 3G "$WWW$P_DESK"
truncate -s 256M "$WWW$P_SRV"
truncate -s 128M "$WWW$P_ARM"
truncate -s 16M "$WWW$P_MIN"
truncate -s 64M "$WWW$P_OLD"
# 100 000 000 bytes: the segmented download's 20 MB ranges below all have
# Content-Range headers of the same length, so started in the same second
# they log byte-identical lines (which must all count).
truncate -s 100000000 "$WWW$P_NET"
truncate -s 64M "$WWW/isos/.hidden/secret.iso"
for p in "$P_DESK" "$P_SRV" "$P_ARM" "$P_MIN" "$P_OLD" "$P_NET"; do
    printf '%s  %s\n' "$(printf '%s' "$p" | md5sum | cut -d' ' -f1)" "${p##*/}" >"$WWW$p.md5"
    printf '%s  %s\n' "$(printf '%s' "$p" | sha512sum | cut -d' ' -f1)" "${p##*/}" >"$WWW$p.sha512"
done
echo "do not serve" >"$WWW/.secret/notes.txt"
echo "acme-token" >"$WWW/.well-known/acme-challenge/token"
# Prepared outside the root, copied in while everything runs.
truncate -s 64M "$T/new.iso"
chmod -R a+rX "$WWW"
if [ -n "$LOGGER_USER" ]; then
    chown "$LOGGER_USER:$LOGGER_GROUP" "$STATE"
    chgrp "$LOGGER_GROUP" "$WWW"
    chmod g+w,+t "$WWW"
    mkdir -p "$WWW/.stats"
    chown "$LOGGER_USER:$LOGGER_GROUP" "$WWW/.stats"
fi

pa_setup "$(pa_free_port)" "$WWW" "$T/dlcount.conf"
URL=http://127.0.0.1:$PA_PORT
if out=$(pa_configtest); then ok "apache configtest accepts the shipped dlcount.conf"; else
    not_ok "apache configtest accepts the shipped dlcount.conf"; printf '# %s\n' "$out"; exit 1
fi
pa_start
ok "private apache started on 127.0.0.1:$PA_PORT"
if [ -n "$LOGGER_USER" ]; then
    # The logger has had time to start; it switches user before reading.
    sleep 0.5
    uid_ok=yes
    want_uid=$(id -u "$LOGGER_USER")
    [ -n "$(pa_pids_with "$T/dlcount.toml")" ] || uid_ok="no logger running"
    for pid in $(pa_pids_with "$T/dlcount.toml"); do
        [ "$(awk '/^Uid:/ { print $3 }' "/proc/$pid/status")" = "$want_uid" ] || uid_ok=no
    done
    check_eq "logger runs as $LOGGER_USER" "$uid_ok" yes
fi

# ----------------------------------------------------------------- clients
# Every client has a hard timeout. Distinct clients are distinct loopback
# source addresses (all of 127.0.0.0/8 is local; Apache on 127.0.0.1 accepts
# connections from any of them).
A=127.0.0.1 B=127.0.0.2 C=127.0.0.3 D=127.0.0.4 E=127.0.0.5
cu() { # cu SOURCE CURL-ARGS...: curl from a source address, status on stdout
    local src=$1
    shift
    curl -sS --max-time 60 --interface "$src" -o /dev/null -w '%{http_code}' "$@"
}
cuf() { # cuf SOURCE FILE CURL-ARGS...: the same, the body saved to FILE
    local src=$1 file=$2
    shift 2
    curl -sS --max-time 60 --interface "$src" -o "$file" -w '%{http_code}' "$@"
}
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

# Full downloads: curl and wget. The same client again the same day is one
# more request, not one more download.
check_eq "curl full download 200" "$(cu $A "$URL$P_SRV")" 200
expect $A "$P_SRV"
done_ $A "$P_SRV"
check_eq "wget full download" "$(timeout 60 wget -q --bind-address=$B -O /dev/null "$URL$P_SRV" && echo complete)" complete
expect $B "$P_SRV"
done_ $B "$P_SRV"
check_eq "curl same file again, same client" "$(cu $A "$URL$P_SRV")" 200
expect $A "$P_SRV"
got=$(curl -sS --max-time 120 --interface $B -o /dev/null -w '%{http_code} %{size_download}' "$URL$P_DESK" || true)
check_eq "curl full 3 GiB download" "$got" "200 $((3 * 1024 * 1024 * 1024))"
expect $B "$P_DESK"
done_ $B "$P_DESK"

# Interrupted then resumed with curl -C -: the first part is a range request
# (206, counted), the resume another 206.
check_eq "curl partial first part 206" "$(cuf $C "$DL_DIR/arm.iso" --range 0-1048575 "$URL$P_ARM")" 206
check_eq "curl -C - resume 206" "$(cuf $C "$DL_DIR/arm.iso" -C - "$URL$P_ARM")" 206
check_eq "curl resumed file complete" "$(size_of "$DL_DIR/arm.iso")" $((128 * 1024 * 1024))
expect $C "$P_ARM" 2
done_ $C "$P_ARM" # the first MiB, then the rest: together the whole file

# Resumed with wget -c from a 5 MiB partial file (made locally: no request).
mkdir -p "$DL_DIR/wget"
head -c $((5 * 1024 * 1024)) /dev/zero >"$DL_DIR/wget/${P_OLD##*/}"
timeout 60 wget -q -c --bind-address=$D -P "$DL_DIR/wget" "$URL$P_OLD" || true
check_eq "wget -c resumed file complete" "$(size_of "$DL_DIR/wget/${P_OLD##*/}")" $((64 * 1024 * 1024))
expect $D "$P_OLD" # not complete: its first 5 MiB were never sent

# Segmented download, two ways. Four parallel equal-sized curl ranges ...
seg_pids=()
for r in 10000000-29999999 30000000-49999999 50000000-69999999 70000000-89999999; do
    curl -sS --max-time 60 --interface $E --range "$r" -o /dev/null "$URL$P_NET" &
    seg_pids+=("$!")
done
seg_fail=0
for pid in "${seg_pids[@]}"; do wait "$pid" || seg_fail=1; done
check_eq "4 parallel curl ranges" "$seg_fail" 0
expect $E "$P_NET" 4 # not complete: bytes 10,000,000 to 89,999,999 only
# ... and aria2 with 4 connections.
timeout 60 aria2c -q -x4 -s4 -k1M --interface=$ARIA_CLIENT --allow-overwrite=true \
    -d "$DL_DIR" -o aria.iso "$URL$P_NET" || true
check_eq "aria2c -x4 -s4 complete" "$(size_of "$DL_DIR/aria.iso")" 100000000
expect $ARIA_CLIENT "$P_NET" 0
done_ $ARIA_CLIENT "$P_NET" # its ranges tile the file

# HEAD counts as a request (and a download for a new client). Query strings,
# %-escapes and doubled slashes name the same file.
check_eq "HEAD 200" "$(cu $A -I "$URL$P_ARM")" 200
expect $A "$P_ARM"
check_eq "escaped path with query 206" "$(cu $A --range 0-0 "$URL/isos/%6cinuxvillage-24.04-server-arm64.iso?from=e2e")" 206
expect $A "$P_ARM"
check_eq "doubled slashes 200" "$(cu $E -I --path-as-is "$URL//isos//linuxvillage-24.04-server-arm64.iso")" 200
expect $E "$P_ARM"

# Not counted: 404, 416, a checksum file, a hidden ISO (403), and a POST,
# which Apache answers like a GET for a static file (200).
check_eq "missing ISO 404" "$(cu $A "$URL/isos/linuxvillage-99.04-amd64.iso")" 404
check_eq "unsatisfiable range 416" "$(cu $A --range 999999999999- "$URL$P_DESK")" 416
check_eq "checksum file 200" "$(cu $A "$URL$P_SRV.sha512")" 200
check_eq "POST to an ISO 200 (never counted)" "$(cu $A -X POST -d x "$URL$P_MIN")" 200
check_eq "hidden ISO 403" "$(cu $A "$URL/isos/.hidden/secret.iso")" 403

# Graceful restart while a slow download is in flight: Apache SIGTERMs the
# old logger at once and hands the new requests to a new one; the slow
# download's line is written to the old logger's pipe when it ends, seconds
# later, and must still be counted.
curl -sS --max-time 60 --interface $B --limit-rate 4M -o "$DL_DIR/min.iso" "$URL$P_MIN" &
slow=$!
BG_PIDS+=("$slow")
sleep 1
loggers_before=$(pa_pids_with "$T/dlcount.toml" | sort | tr '\n' ' ')
pa_graceful
loggers_after=$(pa_pids_with "$T/dlcount.toml" | sort | tr '\n' ' ')
check "graceful restart started a new logger" test "$loggers_before" != "$loggers_after"
slow_rc=0
wait "$slow" || slow_rc=$?
check_eq "slow download spanning the graceful completed" "$slow_rc $(size_of "$DL_DIR/min.iso")" "0 $((16 * 1024 * 1024))"
expect $B "$P_MIN"
done_ $B "$P_MIN"
check_eq "request after graceful 206" "$(cu $C --range 0-1023 "$URL$P_MIN")" 206
expect $C "$P_MIN"

# A new ISO appears while everything runs: the public page must list it
# within seconds without any log line to prompt it, so poll the file on disk
# (a request would itself be a log line), then fetch it through Apache.
cp --sparse=always "$T/new.iso" "$WWW$P_NEW.part"
chmod a+r "$WWW$P_NEW.part"
mv "$WWW$P_NEW.part" "$WWW$P_NEW"
listed=no
for _ in $(seq 1 150); do
    if grep -qF "${P_NEW##*/}" "$WWW/index.html" 2>/dev/null; then listed=yes; break; fi
    sleep 0.1
done
check_eq "public page lists a new ISO within 15 s" "$listed" yes
check "public page through apache lists the new ISO" page_lists "$URL/" "${P_NEW##*/}"
check_eq "download of the new ISO 200" "$(cu $A "$URL$P_NEW")" 200
expect $A "$P_NEW"
done_ $A "$P_NEW"

# The public page lists every ISO (hidden ones are not required either way).
page=$(curl -sS --max-time 10 "$URL/" || true)
unlisted=""
for p in "$P_DESK" "$P_SRV" "$P_ARM" "$P_MIN" "$P_OLD" "$P_NET" "$P_NEW"; do
    grep -qF "${p##*/}" <<<"$page" || unlisted="$unlisted ${p##*/}"
done
check_eq "public page lists every ISO" "${unlisted:-none}" none

# Access rules of the shipped conf.
check_eq "/.stats/ served to the allowed client (127.0.0.1)" "$(cu $A "$URL/.stats/")" 200
check_eq "/.stats/counts.json served to the allowed client" "$(cu $A "$URL/.stats/counts.json")" 200
check_eq "/.stats/ refused to another client (127.0.0.3)" "$(cu $C "$URL/.stats/")" 403
check_eq "/.stats/counts.json refused to another client" "$(cu $C "$URL/.stats/counts.json")" 403
check_eq "/%2estats/ refused to another client" "$(cu $C "$URL/%2estats/counts.json")" 403
check_eq "hidden folder refused even to 127.0.0.1" "$(cu $A "$URL/.secret/notes.txt")" 403
check_eq ".well-known served" "$(cu $C "$URL/.well-known/acme-challenge/token")" 200
check "counts.json is JSON" is_json "$URL/.stats/counts.json"
header() { curl -sS --max-time 10 -o /dev/null -D - "$1" | tr -d '\r' | sed -n 's/^[Cc]ache-[Cc]ontrol: //p'; }
check_eq "public page Cache-Control" "$(header "$URL/")" "no-cache"
check_eq "stats page Cache-Control" "$(header "$URL/.stats/")" "private, no-cache"
check_eq "counts.json Cache-Control" "$(header "$URL/.stats/counts.json")" "no-store"

# Restart with a download in flight: its request is killed, Apache logs it
# (status 200, the bytes sent so far) about a second after the logger got
# SIGTERM; it must be counted.
curl -sS --max-time 60 --interface $D --limit-rate 2M -o /dev/null "$URL$P_SRV" 2>/dev/null &
killed=$!
BG_PIDS+=("$killed")
sleep 1.5
pa_restart
killed_rc=0
wait "$killed" || killed_rc=$?
check "download in flight at restart was cut" test "$killed_rc" -ne 0
expect $D "$P_SRV"
check_eq "request after restart 206" "$(cu $E --range 0-1023 "$URL$P_OLD")" 206
expect $E "$P_OLD"

# Stop: the loggers get SIGTERM, then EOF, and must exit on their own.
pa_stop
check "loggers exited within 15 s of stop" pa_wait_no_pids_with "$T/dlcount.toml" 15

# ------------------------------------------------------------------ checks
check "no AH00106 (logger died) in apache's error log" absent_from AH00106 "$PA_ERRLOG"
check "no Broken pipe in apache's error log" absent_from "Broken pipe" "$PA_ERRLOG"

# The model as JSON: {path: {month: [downloads, requests]}}.
model=$T/model.tsv
: >"$model"
for p in "${!REQ[@]}"; do printf '%s\t%s\t%s\n' "$p" "${DL[$p]}" "${REQ[$p]}" >>"$model"; done

# Apache's own plain log, tallied with the counting rules (a small
# independent parser: the lines come from curl, wget and aria2 only).
python3 - "$HERE" "$PA_ACCESSLOG" "$model" "$ARIA_CLIENT" "$P_NET" "$MONTH" >"$T/expected.json" 2>"$T/plainlog.err" <<'PY' || true
import json, sys
sys.path.insert(0, sys.argv[1])
from plainlog import APACHE, cell, counted_lines
log, model, aria_client, aria_path, month = sys.argv[2:]
plain, seen, aria_requests = {}, set(), 0
for ip, path, day, key, nbytes in counted_lines(log, APACHE):
    c = cell(plain, path, key)
    if (ip, path, day) not in seen:
        seen.add((ip, path, day))
        c["downloads"] += 1
    c["requests"] += 1
    c["bytes"] += nbytes
    if ip == aria_client and path == aria_path:
        aria_requests += 1
expected = {}
for row in open(model):
    path, dls, reqs = row.rstrip("\n").split("\t")
    reqs = int(reqs) + (aria_requests if path == aria_path else 0)
    got = plain.get(path, {}).get(month)
    if got is None or got["downloads"] != int(dls) or got["requests"] != reqs:
        sys.exit("model and plain log disagree on %s: model %s/%s, log %s" % (path, dls, reqs, got))
    expected[path] = {month: {"downloads": int(dls), "requests": reqs, "bytes": got["bytes"]}}
if set(plain) != set(expected):
    sys.exit("plain log counts paths the model does not: %s" % sorted(set(plain) - set(expected)))
print(json.dumps(expected, indent=2, sort_keys=True))
PY
if [ -s "$T/expected.json" ]; then
    ok "apache's plain access log agrees with the expected downloads and requests"
else
    not_ok "apache's plain access log agrees with the expected downloads and requests"
    sed 's/^/# /' "$T/plainlog.err"
fi

report_rc=0
timeout 60 "$BIN" report --db "$DB" --json --detail >"$T/report-detail.json" 2>"$T/report.err" || report_rc=$?
check_eq "report --json --detail exits 0" "$report_rc" 0
if [ -s "$T/expected.json" ] && json_equal "$T/report-detail.json" "$T/expected.json" 2>/dev/null; then
    ok "report --json --detail equals the expected counts"
else
    not_ok "report --json --detail equals the expected counts"
    diag "expected:"; sed 's/^/#   /' "$T/expected.json"
    diag "report:"; sed 's/^/#   /' "$T/report-detail.json" "$T/report.err"
fi
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(json.dumps({p: {m: c["downloads"] for m, c in ms.items()} for p, ms in d.items()}))' \
    "$T/expected.json" >"$T/expected-plain.json" 2>/dev/null || true
timeout 60 "$BIN" report --db "$DB" --json >"$T/report.json" 2>>"$T/report.err" || true
check "report --json equals the expected downloads" json_equal "$T/report.json" "$T/expected-plain.json"

# Completed downloads: the model's, per path this month (paths with none
# are left out, as `report --json` leaves them out).
check_completed "$T" "$MONTH" timeout 60 "$BIN" report --db "$DB" --json --completed

# No raw client address on disk: the SQLite database and its companions.
check "database file exists" test -s "$DB"
leaks=""
for f in "$DB" "$DB-wal" "$DB-shm" "$DB-journal"; do
    [ -e "$f" ] || continue
    for ip in $A $B $C $D $E $ARIA_CLIENT; do
        n=$(grep -a -c -F "$ip" "$f" || true)
        [ "$n" -eq 0 ] || leaks="$leaks ${f##*/}:$ip"
    done
done
check_eq "no client address in the database files" "${leaks:-none}" none

diag "took $(($(date +%s) - START)) s"
results_summary
