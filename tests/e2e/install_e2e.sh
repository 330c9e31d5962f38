#!/usr/bin/env bash
# End-to-end test of scripts/install.sh, run for real against the system's own
# Apache layout (/etc/apache2, apache2ctl, a2enconf, Debian's 000-default site
# with its own CustomLog) without touching the machine: everything happens in
# a throwaway sandbox made of Linux namespaces (unshare):
#   - a mount namespace with copy-on-write overlays over /etc, /var/lib,
#     /var/www, /var/log and /usr/local/bin, and a fresh /run: whatever the
#     installer writes (user, conf, binary, pages) lands in a temporary
#     directory and disappears with the namespace;
#   - a network namespace: the sandboxed Apache listens on port 80 of its own
#     loopback, with 10.9.9.9 added as an "admin network" client address;
#   - a PID namespace: when the test ends, every process it started ends too.
#
# Usage: tests/e2e/install_e2e.sh [PATH-TO-dlcount-pipe]  (default target/release/dlcount-pipe)
# Needs root (namespaces, overlays). Output as apache_e2e.sh: "ok - ..." /
# "not ok - ..." lines and "N passed, M failed"; non-zero exit on failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

BIN_SRC=$(pa_binary "${1:-}")

# ----------------------------------------------------------- outside: set up
if [ "${DLCOUNT_SANDBOX:-}" != inside ]; then
    [ "$(id -u)" -eq 0 ] || pa_die "needs root (namespaces and overlay mounts)"
    [ -x "$BIN_SRC" ] || pa_die "no executable dlcount-pipe at $BIN_SRC (build it: cargo build --release)"
    pa_require_tools apache2:/usr/sbin/apache2 curl:curl python3:python3 iproute2:ip util-linux:unshare
    SANDBOX=$(mktemp -d /tmp/dlcount-install-e2e.XXXXXX)
    trap 'rm -rf "$SANDBOX"' EXIT
    rc=0
    DLCOUNT_SANDBOX=inside SANDBOX=$SANDBOX timeout 300 \
        unshare --mount --net --pid --fork --mount-proc --propagation private \
        bash "$HERE/install_e2e.sh" "$BIN_SRC" || rc=$?
    exit "$rc"
fi

# ------------------------------------------------------------ inside: PID 1
# From here on this shell is PID 1 of the sandbox; nothing below can reach
# the host's processes, network or files outside the overlays.
for d in /etc /var/lib /var/www /var/log /usr/local/bin; do
    mkdir -p "$SANDBOX/upper$d" "$SANDBOX/work$d"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$SANDBOX/upper$d,workdir=$SANDBOX/work$d" "$d"
done
mount -t tmpfs tmpfs /run
mkdir -p /run/lock
ip link set lo up
ip addr add 10.9.9.9/32 dev lo

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); printf 'ok - %s\n' "$1"; }
not_ok() { FAIL=$((FAIL + 1)); printf 'not ok - %s\n' "$1"; }
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; printf "# got '%s', want '%s'\n" "$2" "$3"; fi
}
diag() { printf '# %s\n' "$@"; }
absent_from() { ! grep -q "$1" "$2"; }
absent_user() { ! getent passwd "$1" >/dev/null; }
present_user() { getent passwd "$1" >/dev/null; }
status_of() { # status_of SOURCE URL-PATH
    curl -sS --max-time 30 --interface "$1" -o /dev/null -w '%{http_code}' "http://127.0.0.1$2" || true
}
snapshot() { # the installer's whole footprint, for "changed nothing" checks
    # (find fails on the directories that do not exist yet: that is fine)
    { find /etc/apache2 /etc/dlcount /usr/local/bin /var/lib/dlcount /var/www/html \
        -printf '%p %M %u %g %s %T@\n' 2>/dev/null || true; } | sort | sha256sum
}
logger_pids() { pa_pids_with "/usr/local/bin/dlcount-pipe --config /etc/dlcount/dlcount.toml"; }
apache_pid() { cat /run/apache2/apache2.pid 2>/dev/null || true; }

TZ=$(pa_noon_tz)
export TZ
MONTH=$(date +%Y-%m)
INSTALL=$REPO/scripts/install.sh
BIN=$SANDBOX/dlcount-pipe
cp "$BIN_SRC" "$BIN"
ROOT=/var/www/html

# A stock Debian site: the default vhost serves /var/www/html (with Debian's
# own index.html) and logs to /var/log/apache2/access.log on its own.
mkdir -p "$ROOT/isos"
truncate -s 32M "$ROOT/isos/linuxvillage-24.04-server-amd64.iso"
# Uploaded earlier: a file written in the last --settle seconds is not listed yet.
touch -d '-10 minutes' "$ROOT/isos/linuxvillage-24.04-server-amd64.iso"
[ -f "$ROOT/index.html" ] || echo "<html>It works!</html>" >"$ROOT/index.html"
chmod -R a+rX "$ROOT"
# History for --import-logs: last month's rotated logs, one .gz with two
# members (as logrotate plus a manual append can leave them).
rm -f /var/log/apache2/access.log*
H1='10.1.1.1 - - [03/Oct/2026:10:00:00 +0000] "GET /isos/linuxvillage-24.04-server-amd64.iso HTTP/1.1" 200 33554688 "-" "Wget/1.21.3"'
H2='10.1.1.1 - - [03/Oct/2026:18:00:00 +0000] "GET /isos/linuxvillage-24.04-server-amd64.iso HTTP/1.1" 206 1000 "-" "curl/8.0"'
H3='10.1.1.2 - - [04/Oct/2026:09:30:00 +0000] "HEAD /isos/linuxvillage-24.04-server-amd64.iso HTTP/1.1" 200 300 "-" "curl/8.0"'
{ printf '%s\n' "$H1" | gzip; printf '%s\n' "$H2" | gzip; } >/var/log/apache2/access.log.2.gz
printf '%s\n' "$H3" >/var/log/apache2/access.log.1
: >/var/log/apache2/access.log
chown root:adm /var/log/apache2/access.log*
chmod 0640 /var/log/apache2/access.log*

apache2ctl start 2>&1 | sed 's/^/# /'
for _ in $(seq 1 50); do [ -n "$(apache_pid)" ] && break; sleep 0.1; done
check "sandboxed system apache runs" test -n "$(apache_pid)"

# --dry-run on a fresh system changes nothing.
before=$(snapshot)
out=$("$INSTALL" --dry-run --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 2>&1) || true
check_eq "--dry-run changes nothing" "$(snapshot)" "$before"
check "--dry-run shows the atomic rename" grep -q '^+ mv -f /usr/local/bin/.dlcount-pipe.new' <<<"$out"

# The install.
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$ROOT" --site-title 'Sandbox "Village" downloads' \
    --allow 10.0.0.0/8 --import-logs 2>&1) || rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
check_eq "install exits 0" "$rc" 0
check "binary installed, identical" cmp -s "$BIN" /usr/local/bin/dlcount-pipe
check_eq "binary mode" "$(stat -c '%U %a' /usr/local/bin/dlcount-pipe)" "root 755"
check "system user dlcount" present_user dlcount
check_eq "/var/lib/dlcount owner and mode" "$(stat -c '%U:%G %a' /var/lib/dlcount)" "dlcount:dlcount 750"
check_eq "dlcount.toml root" "$(python3 -c 'import tomllib; print(tomllib.load(open("/etc/dlcount/dlcount.toml", "rb"))["root"])')" "$ROOT"
check_eq "dlcount.toml site_title (escaped)" \
    "$(python3 -c 'import tomllib; print(tomllib.load(open("/etc/dlcount/dlcount.toml", "rb"))["site_title"])')" 'Sandbox "Village" downloads'
check_eq "dlcount.toml user" "$(python3 -c 'import tomllib; print(tomllib.load(open("/etc/dlcount/dlcount.toml", "rb"))["user"])')" dlcount
check "conf enabled" test -L /etc/apache2/conf-enabled/dlcount.conf
check "headers enabled" test -e /etc/apache2/mods-enabled/headers.load
check "conf has the --allow network" grep -q '^ *Require ip 10.0.0.0/8$' /etc/apache2/conf-available/dlcount.conf
check "conf has the root" grep -q "<Directory \"$ROOT\">" /etc/apache2/conf-available/dlcount.conf
check_eq "root: group dlcount, g+w, sticky" "$(stat -c '%G %A' "$ROOT" | cut -c1-18)" "dlcount drwxrwxr-t"
check_eq "root/.stats owned by dlcount" "$(stat -c '%U %a' "$ROOT/.stats")" "dlcount 755"
check "old index.html kept aside" test -s /var/lib/dlcount/index.html.pre-dlcount

# Apache was reloaded and execs the logger itself (direct exec: its parent is
# Apache's parent process, no /bin/sh in between).
sleep 1
pids=$(logger_pids)
check "a logger runs after the reload" test -n "$pids"
parent_ok=yes
for pid in $pids; do
    [ "$(awk '{ print $4 }' "/proc/$pid/stat")" = "$(apache_pid)" ] || parent_ok=no
done
check_eq "logger is a direct child of apache" "$parent_ok" yes

# Live traffic through the stock vhost.
check_eq "ISO download through the default site" "$(status_of 127.0.0.1 /isos/linuxvillage-24.04-server-amd64.iso)" 200
for _ in $(seq 1 50); do [ -s "$ROOT/.stats/index.html" ] && break; sleep 0.1; done
check_eq "/.stats/ from the --allow network" "$(status_of 10.9.9.9 /.stats/)" 200
check_eq "/.stats/ from localhost" "$(status_of 127.0.0.1 /.stats/)" 200
check_eq "/.stats/ from elsewhere refused" "$(status_of 127.0.0.3 /.stats/)" 403
check "public page rendered by dlcount lists the ISO" grep -q linuxvillage-24.04-server-amd64.iso "$ROOT/index.html"

# Idempotent: the same command again changes nothing it already did.
conf_sum=$(sha256sum /etc/apache2/conf-available/dlcount.conf /etc/dlcount/dlcount.toml)
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 2>&1) || rc=$?
check_eq "second install exits 0" "$rc" 0
check "second install: binary up to date" grep -q 'dlcount-pipe is up to date' <<<"$out"
check_eq "second install: conf and toml unchanged" \
    "$(sha256sum /etc/apache2/conf-available/dlcount.conf /etc/dlcount/dlcount.toml)" "$conf_sum"
rc=0
"$INSTALL" --binary "$BIN" --root /srv/elsewhere >/dev/null 2>&1 || rc=$?
check "a different --root than the existing config is refused" test "$rc" -ne 0

# A configtest failure (here: someone else's broken conf) leaves dlcount
# disabled and the script fails, without reloading.
a2disconf -q dlcount >/dev/null
printf 'ThisIsNotAnApacheDirective on\n' >/etc/apache2/conf-available/zz-broken.conf
a2enconf -q zz-broken >/dev/null
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 2>&1) || rc=$?
check "install fails when configtest fails" test "$rc" -ne 0
check "the failure names configtest" grep -q 'configtest failed' <<<"$out"
check "dlcount conf disabled again" test ! -e /etc/apache2/conf-enabled/dlcount.conf
a2disconf -q zz-broken >/dev/null
rm -f /etc/apache2/conf-available/zz-broken.conf
rc=0
"$INSTALL" --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 >/dev/null 2>&1 || rc=$?
check_eq "install succeeds again once fixed" "$rc" 0

# Uninstall: conf off, Apache reloaded, binary and conf gone, counts kept.
rc=0
out=$("$INSTALL" --uninstall 2>&1) || rc=$?
check_eq "uninstall exits 0" "$rc" 0
check "conf disabled and removed" test ! -e /etc/apache2/conf-enabled/dlcount.conf -a ! -e /etc/apache2/conf-available/dlcount.conf
check "binary removed" test ! -e /usr/local/bin/dlcount-pipe
check "loggers exited after the reload" pa_wait_no_pids_with "/usr/local/bin/dlcount-pipe --config" 15
check_eq "apache still serves" "$(status_of 127.0.0.1 /isos/linuxvillage-24.04-server-amd64.iso.missing)" 404
check "counts kept" test -d /var/lib/dlcount
check "no AH00106 in apache's error log" absent_from AH00106 /var/log/apache2/error.log

# The counts: last month's imported history, this month's live download
# (its bytes from Apache's own access.log, which the default site writes).
live_bytes=$(awk '$7 == "/isos/linuxvillage-24.04-server-amd64.iso" && $9 == 200 { s += $10 } END { print s + 0 }' /var/log/apache2/access.log)
python3 - "$MONTH" "$live_bytes" >"$SANDBOX/expected.json" <<'PY'
import json, sys
month, live = sys.argv[1], int(sys.argv[2])
print(json.dumps({"/isos/linuxvillage-24.04-server-amd64.iso": {
    "2026-10": {"downloads": 2, "requests": 3, "bytes": 33554688 + 1000 + 300},
    month: {"downloads": 1, "requests": 1, "bytes": live}}}))
PY
"$BIN" report --db /var/lib/dlcount/dlcount.sqlite --json --detail >"$SANDBOX/report.json" 2>&1 || true
if python3 -c 'import json, sys
sys.exit(0 if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)' "$SANDBOX/report.json" "$SANDBOX/expected.json" 2>/dev/null; then
    ok "report: imported history plus live download"
else
    not_ok "report: imported history plus live download"
    diag "expected: $(cat "$SANDBOX/expected.json")" "report: $(cat "$SANDBOX/report.json")"
fi

# Purge: everything goes, the root is given back.
rc=0
"$INSTALL" --uninstall --purge >/dev/null 2>&1 || rc=$?
check_eq "purge exits 0" "$rc" 0
check "state, config and stats removed" test ! -e /var/lib/dlcount -a ! -e /etc/dlcount -a ! -e "$ROOT/.stats"
check "user removed" absent_user dlcount
check_eq "root given back" "$(stat -c '%G %A' "$ROOT" | cut -c1-18)" "root drwxr-xr-x"

apache2ctl stop >/dev/null 2>&1 || true
printf '%d passed, %d failed\n' "$PASS" "$FAIL"
[ "$FAIL" -eq 0 ]
