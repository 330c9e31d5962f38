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
# Four scenarios, one after the other, each ending with --uninstall/--purge:
#   A. the README's command on a stock Debian (000-default is the only site,
#      ROOT=/var/www/file-server elsewhere): no success claimed without
#      --site, a served root with it; uninstall and purge leave Apache and
#      the root as found;
#   B. a root the existing site already serves (/var/www/html): no --site
#      needed; history import, live counting, idempotence, configtest
#      failure, `dlcount-pipe check` refusing a broken config before any
#      reload, uninstall never exposing the statistics, purge;
#   C. a server with a site of its own: --site alone is refused before
#      anything changes, --site --server-name adds a named site and breaks
#      nothing; a module the admin had enabled stays enabled;
#   D. --nginx on Debian's stock nginx (Apache stopped): refused without a
#      guard for the statistics, nginx -t failing takes its /etc/nginx part
#      back (the listener stays, recorded), then
#      --site --allow --import-logs: the listener as dlcount on a 0660
#      socket, live and imported downloads counted, /.stats/ guarded,
#      listen.log rotated, a stale pid file (SIGKILL, pid reused) never
#      signalled; uninstall leaves /etc/nginx exactly as found, purge removes the rest.
#
# Usage: tests/e2e/install_e2e.sh [PATH-TO-dlcount-pipe]  (default target/release/dlcount-pipe)
# With a dlcount-pipe that has no `check` subcommand, the checks that need it
# are reported as "skip - ..."; tests/e2e/standin-dlcount-pipe has one.
# Needs root (namespaces, overlays). Output as apache_e2e.sh: "ok - ..." /
# "not ok - ..." lines and "N passed, M failed[, K skipped]"; non-zero exit on failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/e2e/sandbox.sh
. "$HERE/sandbox.sh"

BIN_SRC=$(pa_binary "${1:-}")

# ----------------------------------------------------------- outside: set up
if [ "${DLCOUNT_SANDBOX:-}" != inside ]; then
    [ "$(id -u)" -eq 0 ] || pa_die "needs root (namespaces and overlay mounts)"
    [ -x "$BIN_SRC" ] || pa_die "no executable dlcount-pipe at $BIN_SRC (build it: cargo build --release)"
    pa_require_tools apache2:/usr/sbin/apache2 curl:curl python3:python3 iproute2:ip util-linux:unshare
fi
sandbox_enter "$HERE/install_e2e.sh" install-e2e "$BIN_SRC"

# ------------------------------------------------------------ inside: PID 1
# From here on this shell is PID 1 of the sandbox; nothing below can reach
# the host's processes, network or files outside the overlays.
sandbox_overlay /etc /var/lib /var/www /var/log /usr/local/bin
ip addr add 10.9.9.9/32 dev lo

absent_from() { ! grep -q "$1" "$2"; }
absent_user() { ! getent passwd "$1" >/dev/null; }
present_user() { getent passwd "$1" >/dev/null; }
status_of() { # status_of SOURCE URL-PATH [HOST]
    curl -sS --max-time 30 --interface "$1" -o /dev/null -w '%{http_code}' \
        --resolve "${3:-localhost}:80:127.0.0.1" "http://${3:-localhost}$2" || true
}
body_of() { # body_of URL-PATH [HOST]
    curl -sS --max-time 30 --resolve "${2:-localhost}:80:127.0.0.1" "http://${2:-localhost}$1" || true
}
snapshot() { # the installer's whole footprint, for "changed nothing" checks
    # (find fails on the directories that do not exist yet: that is fine)
    { find /etc/apache2 /etc/dlcount /usr/local/bin /var/lib/dlcount /var/www \
        -printf '%p %M %u %g %s %T@\n' 2>/dev/null || true; } | sort | sha256sum
}
logger_pids() { pa_pids_with "/usr/local/bin/dlcount-pipe --config /etc/dlcount/dlcount.toml"; }
apache_pid() { cat /run/apache2/apache2.pid 2>/dev/null || true; }
generations() { grep -c 'resuming normal operations' /var/log/apache2/error.log 2>/dev/null || true; }
# Apache's state markers (a2enmod & co.): /var/lib/apache2/KIND/STATE/NAME.
markers() { find /var/lib/apache2 -mindepth 3 -maxdepth 3 -type f 2>/dev/null | sort | tr '\n' ' '; }
mods_enabled() { (cd /etc/apache2/mods-enabled && ls) | tr '\n' ' '; }
sites_enabled() { (cd /etc/apache2/sites-enabled && ls) | tr '\n' ' '; }
last_line() { printf '%s\n' "$1" | tail -n 1; }
# The URL the installer ends with, alone at the end of its last line.
final_url() { last_line "$1" | grep -o 'http://[^ ]*$' || true; }
# stats_closed: /.stats/, its page and counts.json are not 200 for anyone.
stats_closed() {
    local who path code
    for who in 127.0.0.1 10.9.9.9 127.0.0.3; do
        for path in /.stats/ /.stats/counts.json /.stats/index.html; do
            code=$(status_of "$who" "$path")
            if [ "$code" = 200 ]; then
                diag "$path answers 200 to $who"
                return 1
            fi
        done
    done
}

TZ=$(pa_noon_tz)
export TZ
MONTH=$(date +%Y-%m)
INSTALL=$REPO/scripts/install.sh
BIN=$SANDBOX/dlcount-pipe
cp "$BIN_SRC" "$BIN"
ISO=linuxvillage-24.04-server-amd64.iso
if "$BIN" check --help >/dev/null 2>&1; then HAS_CHECK=1; else HAS_CHECK=0; fi
NO_CHECK="${BIN_SRC##*/} has no check subcommand yet"

# The shipped units as systemd reads them (the binary's path filled in as
# install.sh does, their Documentation= man pages generated as the .deb does).
if command -v systemd-analyze >/dev/null 2>&1; then
    units=$SANDBOX/units
    mkdir -p "$units/man/man1"
    "$BIN" generate man "$units/man/man1" >/dev/null
    for u in "$REPO"/scripts/systemd/*.service; do
        sed "s#/usr/local/bin/dlcount-pipe#$BIN#g" "$u" >"$units/${u##*/}"
    done
    check "systemd-analyze verify scripts/systemd/*.service" \
        env MANPATH="$units/man:" systemd-analyze verify "$units"/*.service
else
    skip "systemd-analyze verify scripts/systemd/*.service" "systemd-analyze is not installed (package systemd)"
fi

# A stock Debian site: the default vhost serves /var/www/html (with Debian's
# own index.html) and logs to /var/log/apache2/access.log on its own.
[ -f /var/www/html/index.html ] || echo "<html>It works!</html>" >/var/www/html/index.html
DEBIAN_INDEX=$(sha256sum </var/www/html/index.html)
check_eq "stock Debian: 000-default is the only site" "$(sites_enabled)" "000-default.conf "
MODS_BEFORE=$(mods_enabled)
MARKERS_BEFORE=$(markers)
check "stock Debian: headers is not enabled" absent_from headers <(printf '%s\n' "$MODS_BEFORE")
rm -f /var/log/apache2/access.log*

apache2ctl start 2>&1 | sed 's/^/# /'
for _ in $(seq 1 50); do [ -n "$(apache_pid)" ] && break; sleep 0.1; done
check "sandboxed system apache runs" test -n "$(apache_pid)"

# ============================================= A. the README on stock Debian
R=/var/www/file-server
mkdir -p "$R/isos"
truncate -s 1M "$R/isos/$ISO"
# Uploaded earlier: a file written in the last --settle seconds is not listed yet.
touch -d '-10 minutes' "$R/isos/$ISO"
chmod -R a+rX "$R"

rc=0
out=$("$INSTALL" --binary "$BIN" --root "$R" --allow 10.0.0.0/8 2>&1) || rc=$?
show "$out"
check_eq "A: without --site on stock Debian: exit 3 (installed, not served)" "$rc" 3
check "A: it created the database" grep -qxF "dlcount-install: created the database /var/lib/dlcount/dlcount.sqlite" <<<"$out"
check_eq "A: ... without an import summary of nothing (0 lines)" "$(grep -c -e 'read 1 file' -e ' 0 lines' <<<"$out" || true)" 0
check "A: it says Apache does not serve the root, and what does" \
    grep -qF "Apache does not serve $R at http://localhost/ (it is served by 000-default.conf, DocumentRoot /var/www/html)." <<<"$out"
check "A: ... and exactly what to run" grep -q 'To serve it, run this again with --site' <<<"$out"
check_eq "A: no URL on its last line" "$(final_url "$out")" ""
check_eq "A: the ISO is indeed not served" "$(status_of 127.0.0.1 "/isos/$ISO")" 404

rc=0
out=$("$INSTALL" --binary "$BIN" --root "$R" --allow 10.0.0.0/8 --site 2>&1) || rc=$?
show "$out"
check_eq "A: with --site: exit 0" "$rc" 0
check_eq "A: last line ends with the URL" "$(final_url "$out")" "http://localhost/"
check_eq "A: that URL answers 200" "$(status_of 127.0.0.1 /)" 200
check_eq "A: it serves dlcount's page from the root" "$(body_of / | sha256sum)" "$(sha256sum <"$R/index.html")"
check "A: the page lists the ISO" grep -q "$ISO" "$R/index.html"
check_eq "A: the ISO answers 200" "$(status_of 127.0.0.1 "/isos/$ISO")" 200
check_eq "A: by IP address too" "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1/isos/$ISO")" 200
for _ in $(seq 1 50); do [ -s "$R/.stats/index.html" ] && break; sleep 0.1; done
check_eq "A: /.stats/ from localhost" "$(status_of 127.0.0.1 /.stats/)" 200
check_eq "A: /.stats/ from the --allow network" "$(status_of 10.9.9.9 /.stats/)" 200
check_eq "A: /.stats/counts.json from elsewhere refused" "$(status_of 127.0.0.3 /.stats/counts.json)" 403
# The README's promise: a download shows on /.stats/ within the --refresh minute,
# with no new day and no restart. Clients so far: 127.0.0.1 (twice); now 10.9.9.9.
check_eq "A: a download from the admin network" "$(status_of 10.9.9.9 "/isos/$ISO")" 200
stats_show_two() {
    body_of /.stats/counts.json | python3 -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d.get(sys.argv[1], {}).get(sys.argv[2]) == 2 else 1)' "/isos/$ISO" "$MONTH" 2>/dev/null
}
waited=0
until stats_show_two || [ "$waited" -ge 90 ]; do sleep 1; waited=$((waited + 1)); done
check "A: both downloads are on /.stats/counts.json within a minute (${waited} s)" stats_show_two
check_eq "A: report agrees" "$(/usr/local/bin/dlcount-pipe report --config /etc/dlcount/dlcount.toml --json)" \
    "$(body_of /.stats/counts.json)"
check_eq "A: sites: dlcount instead of 000-default" "$(sites_enabled)" "dlcount.conf "
check_eq "A: what it changed is recorded" "$(tr '\n' ';' </etc/dlcount/apache-changes)" \
    "enmod headers;enconf dlcount;dissite 000-default;ensite dlcount;"
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$R" --allow 10.0.0.0/8 --site 2>&1) || rc=$?
check_eq "A: again: exit 0, same URL" "$rc $(final_url "$out")" "0 http://localhost/"
check_eq "A: again: nothing recorded twice" "$(wc -l </etc/dlcount/apache-changes)" 4

rc=0
out=$("$INSTALL" --uninstall 2>&1) || rc=$?
show "$out"
check_eq "A: uninstall exits 0" "$rc" 0
check "A: after uninstall /.stats/ is 200 for nobody" stats_closed
check "A: ROOT/.stats removed" test ! -e "$R/.stats"
check_eq "A: uninstall: 000-default back, dlcount site gone" "$(sites_enabled)" "000-default.conf "
check "A: uninstall: site file removed" test ! -e /etc/apache2/sites-available/dlcount.conf
check_eq "A: uninstall: modules as before the install" "$(mods_enabled)" "$MODS_BEFORE"
check_eq "A: uninstall: the stock page is back at /" "$(body_of / | sha256sum)" "$DEBIAN_INDEX"
check "A: uninstall: the record is emptied" test ! -s /etc/dlcount/apache-changes
dlcount_uid=$(id -u dlcount)
rc=0
out=$("$INSTALL" --uninstall --purge 2>&1) || rc=$?
show "$out"
check_eq "A: purge exits 0" "$rc" 0
check_eq "A: purge: no deluser/crontab noise" "$(grep -ci crontab <<<"$out" || true)" 0
check_eq "A: purge: Apache's a2enmod/a2dissite state markers as before" "$(markers)" "$MARKERS_BEFORE"
check "A: purge: group dlcount removed" test -z "$(getent group dlcount || true)"
check_eq "A: purge: no file of dlcount's left in the root" "$(find "$R" -uid "$dlcount_uid" | wc -l)" 0
check "A: purge: no generated index.html left" test ! -e "$R/index.html"
check_eq "A: purge: modules as before" "$(mods_enabled)" "$MODS_BEFORE"
check_eq "A: purge: root given back" "$(stat -c '%U %G %A' "$R" | cut -c1-20)" "root root drwxr-xr-x"
check "A: purge: /etc/dlcount and /var/lib/dlcount removed" test ! -e /etc/dlcount -a ! -e /var/lib/dlcount
rm -rf "$R"

# ============================== B. a root the existing site already serves
ROOT=/var/www/html
mkdir -p "$ROOT/isos"
truncate -s 32M "$ROOT/isos/$ISO"
# Uploaded earlier: a file written in the last --settle seconds is not listed yet.
touch -d '-10 minutes' "$ROOT/isos/$ISO"
chmod -R a+rX "$ROOT"
# History for --import-logs: last month's rotated logs, one .gz with two
# members (as logrotate plus a manual append can leave them).
H1='10.1.1.1 - - [03/Oct/2026:10:00:00 +0000] "GET /isos/linuxvillage-24.04-server-amd64.iso HTTP/1.1" 200 33554688 "-" "Wget/1.21.3"'
H2='10.1.1.1 - - [03/Oct/2026:18:00:00 +0000] "GET /isos/linuxvillage-24.04-server-amd64.iso HTTP/1.1" 206 1000 "-" "curl/8.0"'
H3='10.1.1.2 - - [04/Oct/2026:09:30:00 +0000] "HEAD /isos/linuxvillage-24.04-server-amd64.iso HTTP/1.1" 200 300 "-" "curl/8.0"'
{ printf '%s\n' "$H1" | gzip; printf '%s\n' "$H2" | gzip; } >/var/log/apache2/access.log.2.gz
printf '%s\n' "$H3" >/var/log/apache2/access.log.1
# Scenario A's requests went to the old access.log: start a fresh one.
: >/var/log/apache2/access.log
chown root:adm /var/log/apache2/access.log*
chmod 0640 /var/log/apache2/access.log*
apache2ctl graceful
sleep 1

# --dry-run on a fresh system changes nothing.
before=$(snapshot)
out=$("$INSTALL" --dry-run --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 2>&1) || true
check_eq "B: --dry-run changes nothing" "$(snapshot)" "$before"
check "B: --dry-run shows the atomic rename" grep -q '^+ mv -f /usr/local/bin/.dlcount-pipe.new' <<<"$out"
check "B: --dry-run shows the check before Apache" \
    grep -q '^+ /usr/local/bin/dlcount-pipe check --config /etc/dlcount/dlcount.toml$' <<<"$out"

# The install.
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$ROOT" --site-title 'Sandbox "Village" downloads' \
    --allow 10.0.0.0/8 --import-logs 2>&1) || rc=$?
show "$out"
check_eq "B: install exits 0" "$rc" 0
check_eq "B: last line ends with the URL" "$(final_url "$out")" "http://localhost/"
check_eq "B: that URL answers 200 with dlcount's page" "$(body_of / | sha256sum)" "$(sha256sum <"$ROOT/index.html")"
check_eq "B: the sites are left alone" "$(sites_enabled)" "000-default.conf "
if [ "$HAS_CHECK" = 1 ]; then
    check "B: dlcount-pipe check ran before Apache was touched" \
        grep -q "^dlcount-install: checked /etc/dlcount/dlcount.toml: " <<<"$out"
else
    skip "B: dlcount-pipe check ran before Apache was touched" "$NO_CHECK"
fi
check "B: binary installed, identical" cmp -s "$BIN" /usr/local/bin/dlcount-pipe
check_eq "B: binary mode" "$(stat -c '%U %a' /usr/local/bin/dlcount-pipe)" "root 755"
check "B: system user dlcount" present_user dlcount
check_eq "B: /var/lib/dlcount owner and mode" "$(stat -c '%U:%G %a' /var/lib/dlcount)" "dlcount:dlcount 750"
check_eq "B: dlcount.toml root" "$(python3 -c 'import tomllib; print(tomllib.load(open("/etc/dlcount/dlcount.toml", "rb"))["root"])')" "$ROOT"
check_eq "B: dlcount.toml site_title (escaped)" \
    "$(python3 -c 'import tomllib; print(tomllib.load(open("/etc/dlcount/dlcount.toml", "rb"))["site_title"])')" 'Sandbox "Village" downloads'
check_eq "B: dlcount.toml user" "$(python3 -c 'import tomllib; print(tomllib.load(open("/etc/dlcount/dlcount.toml", "rb"))["user"])')" dlcount
check "B: conf enabled" test -L /etc/apache2/conf-enabled/dlcount.conf
check "B: headers enabled" test -e /etc/apache2/mods-enabled/headers.load
check "B: conf has the --allow network" grep -q '^ *Require ip 10.0.0.0/8$' /etc/apache2/conf-available/dlcount.conf
check "B: conf has the root" grep -q "<Directory \"$ROOT\">" /etc/apache2/conf-available/dlcount.conf
check_eq "B: root: group dlcount, g+w, sticky" "$(stat -c '%G %A' "$ROOT" | cut -c1-18)" "dlcount drwxrwxr-t"
check_eq "B: root/.stats owned by dlcount" "$(stat -c '%U %a' "$ROOT/.stats")" "dlcount 755"
check_eq "B: old index.html kept aside, in root's own directory" \
    "$(stat -c '%U:%G %a' /var/lib/dlcount-install 2>&1) $(sha256sum </var/lib/dlcount-install/index.html.pre-dlcount 2>&1)" \
    "root:root 700 $DEBIAN_INDEX"
check "B: ... not in dlcount's /var/lib/dlcount" test ! -e /var/lib/dlcount/index.html.pre-dlcount

# Apache was reloaded and execs the logger itself (direct exec: its parent is
# Apache's parent process, no /bin/sh in between).
sleep 1
pids=$(logger_pids)
check "B: a logger runs after the reload" test -n "$pids"
parent_ok=yes
for pid in $pids; do
    [ "$(awk '{ print $4 }' "/proc/$pid/stat")" = "$(apache_pid)" ] || parent_ok=no
done
check_eq "B: logger is a direct child of apache" "$parent_ok" yes

# Live traffic through the stock vhost.
check_eq "B: ISO download through the default site" "$(status_of 127.0.0.1 "/isos/$ISO")" 200
for _ in $(seq 1 50); do [ -s "$ROOT/.stats/index.html" ] && break; sleep 0.1; done
check_eq "B: /.stats/ from the --allow network" "$(status_of 10.9.9.9 /.stats/)" 200
check_eq "B: /.stats/ from localhost" "$(status_of 127.0.0.1 /.stats/)" 200
check_eq "B: /.stats/ from elsewhere refused" "$(status_of 127.0.0.3 /.stats/)" 403
check "B: public page rendered by dlcount lists the ISO" grep -q "$ISO" "$ROOT/index.html"

# Idempotent: the same command again changes nothing it already did.
# Meanwhile dlcount has put a link to a directory of root's in place of
# its own ROOT/.stats: the install must not follow it (it used to chown
# the target to dlcount).
mkdir -m 0700 /etc/e2e-victim-dir
runuser -u dlcount -- sh -c 'rm -rf "$1/.stats" && ln -s /etc/e2e-victim-dir "$1/.stats"' sh "$ROOT" || true
check "B: (set-up) ROOT/.stats is a link of dlcount's" test -L "$ROOT/.stats"
conf_sum=$(sha256sum /etc/apache2/conf-available/dlcount.conf /etc/dlcount/dlcount.toml)
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 2>&1) || rc=$?
check_eq "B: second install exits 0" "$rc" 0
check_eq "B: second install: dlcount's link in place of ROOT/.stats not followed" \
    "$(stat -c '%U:%G %a' /etc/e2e-victim-dir)" "root:root 700"
check_eq "B: ... ROOT/.stats is dlcount's directory again" \
    "$(stat -c '%F %U %a' "$ROOT/.stats" 2>&1)" "directory dlcount 755"
# (Should that fail, the link goes, so that what follows tests its own point.)
if [ -L "$ROOT/.stats" ]; then
    rm -f "$ROOT/.stats"
    install -d -o dlcount -g dlcount -m 0755 "$ROOT/.stats"
fi
check "B: second install: binary up to date" grep -q 'dlcount-pipe is up to date' <<<"$out"
check_eq "B: second install: conf and toml unchanged" \
    "$(sha256sum /etc/apache2/conf-available/dlcount.conf /etc/dlcount/dlcount.toml)" "$conf_sum"
rc=0
"$INSTALL" --binary "$BIN" --root /srv/elsewhere >/dev/null 2>&1 || rc=$?
check "B: a different --root than the existing config is refused" test "$rc" -ne 0

# A broken dlcount.toml: the installer runs `dlcount-pipe check` on it and
# stops with its message, before Apache is reloaded.
if [ "$HAS_CHECK" = 1 ]; then
    cp -p /etc/dlcount/dlcount.toml "$SANDBOX/dlcount.toml.good"
    printf 'retention_days = [this is not TOML\n' >>/etc/dlcount/dlcount.toml
    gen=$(generations)
    rc=0
    out=$("$INSTALL" --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 2>&1) || rc=$?
    show "$out"
    check "B: broken config: install fails" test "$rc" -ne 0
    check "B: broken config: the check's own message names the file" \
        grep -q '/etc/dlcount/dlcount.toml' <<<"$(grep -v '^dlcount-install:' <<<"$out")"
    check "B: broken config: the installer says Apache was not touched" \
        grep -qF 'check --config /etc/dlcount/dlcount.toml failed (above); Apache not touched' <<<"$out"
    sleep 1
    check_eq "B: broken config: Apache not reloaded" "$(generations)" "$gen"
    cp -p "$SANDBOX/dlcount.toml.good" /etc/dlcount/dlcount.toml
else
    skip "B: broken config: install fails, names the file, Apache not reloaded" "$NO_CHECK"
fi

# A configtest failure (here: someone else's broken conf) leaves dlcount
# disabled and the script fails, without reloading.
a2disconf -q dlcount >/dev/null
printf 'ThisIsNotAnApacheDirective on\n' >/etc/apache2/conf-available/zz-broken.conf
a2enconf -q zz-broken >/dev/null
gen=$(generations)
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 2>&1) || rc=$?
check "B: install fails when configtest fails" test "$rc" -ne 0
check "B: the failure names configtest" grep -q 'configtest failed' <<<"$out"
check "B: dlcount conf disabled again" test ! -e /etc/apache2/conf-enabled/dlcount.conf
sleep 1
check_eq "B: configtest failure: Apache not reloaded" "$(generations)" "$gen"
a2disconf -q -p zz-broken >/dev/null  # -p: no marker of the test's own left
rm -f /etc/apache2/conf-available/zz-broken.conf
gen=$(generations)
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$ROOT" --allow 10.0.0.0/8 2>&1) || rc=$?
check_eq "B: install succeeds again once fixed" "$rc $(final_url "$out")" "0 http://localhost/"
# (and "not reloaded" above means something: a reload is seen; Apache logs
# it once the new generation runs, which can be after the installer ends)
for _ in $(seq 1 100); do [ "$(generations)" -gt "$gen" ] && break; sleep 0.1; done
check_eq "B: ... and reloads Apache once" "$(generations)" "$((gen + 1))"
check_eq "B: /.stats/counts.json from localhost before uninstall" "$(status_of 127.0.0.1 /.stats/counts.json)" 200

# Uninstall: conf off, Apache reloaded, binary and conf gone, counts kept,
# and the private statistics reachable by nobody. Before it, dlcount turns
# its page into a dangling link into /etc/profile.d: purge must remove it,
# not write the old index.html through it.
runuser -u dlcount -- ln -sfn /etc/profile.d/e2e-evil.sh "$ROOT/index.html" || true
check "B: (set-up) ROOT/index.html is a link of dlcount's" test -L "$ROOT/index.html"
rc=0
out=$("$INSTALL" --uninstall 2>&1) || rc=$?
show "$out"
check_eq "B: uninstall exits 0" "$rc" 0
check "B: conf disabled and removed" test ! -e /etc/apache2/conf-enabled/dlcount.conf -a ! -e /etc/apache2/conf-available/dlcount.conf
check "B: binary removed" test ! -e /usr/local/bin/dlcount-pipe
check "B: after uninstall /.stats/ is 200 for nobody" stats_closed
check "B: ROOT/.stats removed" test ! -e "$ROOT/.stats"
check "B: dlcount may no longer write into the root" test -z "$(find "$ROOT" -maxdepth 0 -perm -g+w)"
check "B: loggers exited after the reload" pa_wait_no_pids_with "/usr/local/bin/dlcount-pipe --config" 15
check "B: ROOT/.stats not written again by the exiting logger" test ! -e "$ROOT/.stats"
check_eq "B: apache still serves" "$(status_of 127.0.0.1 "/isos/$ISO.missing")" 404
check_eq "B: uninstall: modules as before the install" "$(mods_enabled)" "$MODS_BEFORE"
check "B: counts kept" test -d /var/lib/dlcount
check "B: no AH00106 in apache's error log" absent_from AH00106 /var/log/apache2/error.log

# The counts: last month's imported history, this month's live download
# (its bytes from Apache's own access.log, which the default site writes).
live_bytes=$(awk -v p="/isos/$ISO" '$7 == p && $9 == 200 { s += $10 } END { print s + 0 }' /var/log/apache2/access.log)
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
    ok "B: report: imported history plus live download"
else
    not_ok "B: report: imported history plus live download"
    diag "expected: $(cat "$SANDBOX/expected.json")" "report: $(cat "$SANDBOX/report.json")"
fi

# Purge: everything goes, the root is given back with its own index.html.
# dlcount has written a page of its own where 0.1.0 kept the saved one:
# it is not what comes back.
runuser -u dlcount -- sh -c 'rm -f /var/lib/dlcount/index.html.pre-dlcount &&
    printf "evil\n" >/var/lib/dlcount/index.html.pre-dlcount' || true
check_eq "B: (set-up) dlcount's own /var/lib/dlcount/index.html.pre-dlcount" \
    "$(stat -c %U /var/lib/dlcount/index.html.pre-dlcount 2>&1)" dlcount
dlcount_uid=$(id -u dlcount)
rc=0
out=$("$INSTALL" --uninstall --purge 2>&1) || rc=$?
show "$out"
check_eq "B: purge exits 0" "$rc" 0
check "B: purge: nothing written through dlcount's link ROOT/index.html" \
    test ! -e /etc/profile.d/e2e-evil.sh -a ! -L /etc/profile.d/e2e-evil.sh
check "B: purge: dlcount's /var/lib/dlcount/index.html.pre-dlcount is dropped, not taken over" \
    grep -qxF "dlcount-install: warning: /var/lib/dlcount/index.html.pre-dlcount is not the plain file this script saved there; dropped" <<<"$out"
check "B: purge: /var/lib/dlcount-install removed" test ! -e /var/lib/dlcount-install
check_eq "B: purge: no deluser/crontab noise" "$(grep -ci crontab <<<"$out" || true)" 0
check_eq "B: purge: Apache's state markers as before" "$(markers)" "$MARKERS_BEFORE"
check "B: state, config and stats removed" test ! -e /var/lib/dlcount -a ! -e /etc/dlcount -a ! -e "$ROOT/.stats"
check "B: user removed" absent_user dlcount
check_eq "B: purge: no file of dlcount's left in the root" "$(find "$ROOT" -uid "$dlcount_uid" | wc -l)" 0
check_eq "B: purge: Debian's own index.html is back" "$(sha256sum <"$ROOT/index.html")" "$DEBIAN_INDEX"
check_eq "B: purge: ... with its owner and mode" "$(stat -c '%U %G %a' "$ROOT/index.html")" "root root 644"
check_eq "B: root given back" "$(stat -c '%G %A' "$ROOT" | cut -c1-18)" "root drwxr-xr-x"
check_eq "B: purge: modules as before" "$(mods_enabled)" "$MODS_BEFORE"
rm -rf "$ROOT/isos"

# ====================================== C. a server with a site of its own
mkdir -p /var/www/shop
echo "the shop" >/var/www/shop/index.html
printf '<VirtualHost *:80>\n    ServerName shop.test\n    DocumentRoot /var/www/shop\n</VirtualHost>\n' \
    >/etc/apache2/sites-available/shop.conf
a2ensite -q shop >/dev/null
a2enmod -q headers >/dev/null
apache2ctl graceful
sleep 1
MODS_ADMIN=$(mods_enabled)
MARKERS_ADMIN=$(markers)
check_eq "C: the shop answers" "$(body_of / shop.test)" "the shop"
R=/var/www/file-server
mkdir -p "$R/isos"
truncate -s 1M "$R/isos/$ISO"
# Uploaded earlier: a file written in the last --settle seconds is not listed yet.
touch -d '-10 minutes' "$R/isos/$ISO"
chmod -R a+rX "$R"
before=$(snapshot)
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$R" --site 2>&1) || rc=$?
show "$out"
check_eq "C: --site beside other sites: refused" "$rc" 1
check "C: ... naming them" grep -q 'these sites are enabled: 000-default shop\.' <<<"$out"
check "C: ... and what to add" grep -q 'add --server-name downloads.example.org' <<<"$out"
check_eq "C: ... before anything changed" "$(snapshot)" "$before"
rc=0
out=$("$INSTALL" --binary "$BIN" --root "$R" --site --server-name downloads.test 2>&1) || rc=$?
show "$out"
check_eq "C: --site --server-name: exit 0" "$rc" 0
check_eq "C: last line ends with its URL" "$(final_url "$out")" "http://downloads.test/"
check_eq "C: that URL serves dlcount's page" "$(body_of / downloads.test | sha256sum)" "$(sha256sum <"$R/index.html")"
check_eq "C: the ISO under that name" "$(status_of 127.0.0.1 "/isos/$ISO" downloads.test)" 200
check_eq "C: the shop is untouched" "$(body_of / shop.test)" "the shop"
check_eq "C: the default site is untouched" "$(body_of / | sha256sum)" "$DEBIAN_INDEX"
check_eq "C: sites" "$(sites_enabled)" "000-default.conf dlcount.conf shop.conf "
check_eq "C: /.stats/ of the named site from elsewhere refused" "$(status_of 127.0.0.3 /.stats/ downloads.test)" 403
check_eq "C: headers was the admin's: not recorded" "$(tr '\n' ';' </etc/dlcount/apache-changes)" "enconf dlcount;ensite dlcount;"
# dlcount links a file of root's where 0.1.0 kept the saved index.html:
# purge must not publish it as the root's page.
printf 'precious\n' >/etc/e2e-victim
chmod 0644 /etc/e2e-victim
runuser -u dlcount -- ln -sfn /etc/e2e-victim /var/lib/dlcount/index.html.pre-dlcount || true
check "C: (set-up) the saved index.html is dlcount's link" test -L /var/lib/dlcount/index.html.pre-dlcount
rc=0
"$INSTALL" --uninstall --purge >/dev/null 2>&1 || rc=$?
check_eq "C: purge exits 0" "$rc" 0
check "C: purge: dlcount's link as the saved index.html not followed" test ! -e "$R/index.html" -a ! -L "$R/index.html"
check_eq "C: purge: the admin's modules stay (headers too)" "$(mods_enabled)" "$MODS_ADMIN"
check_eq "C: purge: the state markers as the admin left them" "$(markers)" "$MARKERS_ADMIN"
check_eq "C: purge: the sites as they were" "$(sites_enabled)" "000-default.conf shop.conf "
check_eq "C: purge: the shop still answers" "$(body_of / shop.test)" "the shop"
check "C: purge: no generated page left" test ! -e "$R/index.html" -a ! -e "$R/.stats"

apache2ctl stop >/dev/null 2>&1 || true

# ======================================== D. --nginx on a stock Debian nginx
# Debian's nginx as installed: the stock `default` site serving /var/www/html
# on port 80 (Apache, stopped above, had it until now), no systemd in the
# sandbox: the listener runs as `listen --daemon`.
if ! command -v nginx >/dev/null 2>&1; then
    skip "D: install.sh --nginx" "nginx is not installed (scripts/test.sh installs it)"
    results_summary
    exit
fi
nginx_tree() { # /etc/nginx as found: names, modes, owners, sizes, link targets
    find /etc/nginx -printf '%p %M %u %g %s %l\n' | sort | sha256sum
}
NGINX_BEFORE=$(nginx_tree)
ngx_sites_enabled() { (cd /etc/nginx/sites-enabled && ls) | tr '\n' ' '; }
listener_pids() { pa_pids_with "dlcount-pipe listen --config /etc/dlcount/dlcount.toml"; }
nginx
for _ in $(seq 1 50); do [ -s /run/nginx.pid ] && break; sleep 0.1; done
check_eq "D: Debian's nginx serves its stock page" "$(status_of 127.0.0.1 /)" 200
check_eq "D: stock nginx: default is the only site" "$(ngx_sites_enabled)" "default "
R=/var/www/file-server
mkdir -p "$R/isos"
truncate -s 1M "$R/isos/$ISO"
touch -d '-10 minutes' "$R/isos/$ISO"
chmod -R a+rX "$R"
# History in nginx's own access.log (its predefined combined format).
printf '192.0.2.77 - - [%s] "GET /isos/%s HTTP/1.1" 200 1234 "-" "Wget/1.21.4"\n' \
    "$(date '+%d/%b/%Y:10:00:00 %z')" "$ISO" >/var/log/nginx/access.log

rc=0
before=$(snapshot)
out=$("$INSTALL" --nginx --binary "$BIN" --root "$R" 2>&1) || rc=$?
show "$out"
check_eq "D: --nginx without --site, no server guarding the statistics: refused" "$rc" 1
check "D: ... saying which include line guards them" grep -q 'include snippets/dlcount-stats.conf;' <<<"$out"
check_eq "D: ... before anything changed" "$(snapshot)" "$before"

# nginx -t fails (a broken file of the admin's): what this run put in
# /etc/nginx is taken back, nginx keeps serving as before; exactly that:
# the listener and the sysctl file stay, running and recorded, as it says.
echo "this is not nginx" >/etc/nginx/conf.d/zz-broken.conf
rc=0
out=$("$INSTALL" --nginx --binary "$BIN" --root "$R" --site --allow 10.0.0.0/8 2>&1) || rc=$?
show "$out"
check_eq "D: nginx -t failing: exit 1" "$rc" 1
check "D: ... naming nginx -t" grep -q 'nginx -t failed' <<<"$out"
check "D: ... dlcount's conf taken back" test ! -e /etc/nginx/conf.d/dlcount.conf -a ! -e /etc/nginx/sites-available/dlcount
check_eq "D: ... the stock site enabled again" "$(ngx_sites_enabled)" "default "
check_eq "D: ... nginx still serves the stock page" "$(body_of / | sha256sum)" "$DEBIAN_INDEX"
check "D: ... saying the listener stays" grep -q 'The listener stays installed and running' <<<"$out"
check "D: ... the listener still runs" test -n "$(listener_pids)"
check "D: ... the sysctl file and log rotation stay" test -e /etc/sysctl.d/60-dlcount.conf -a -e /etc/logrotate.d/dlcount-listen
check_eq "D: ... the record: what stays, nothing of /etc/nginx" \
    "$(sort /etc/dlcount/nginx-changes 2>/dev/null | tr '\n' '|')" \
    "daemon dlcount-listen|file /etc/logrotate.d/dlcount-listen|file /etc/sysctl.d/60-dlcount.conf|"
rm -f /etc/nginx/conf.d/zz-broken.conf

rc=0
out=$("$INSTALL" --nginx --binary "$BIN" --root "$R" --site --allow 10.0.0.0/8 --import-logs 2>&1) || rc=$?
show "$out"
check_eq "D: --nginx --site: exit 0" "$rc" 0
check_eq "D: last line ends with the URL" "$(final_url "$out")" "http://localhost/"
check "D: the config has nginx's format" grep -qx 'format = "nginx_dlcount"' /etc/dlcount/dlcount.toml
check_eq "D: sites: dlcount in place of the stock default" "$(ngx_sites_enabled)" "dlcount "
check "D: nginx -t passes" nginx -t -q
check "D: conf.d/dlcount.conf sends to the socket" \
    grep -q '^access_log syslog:server=unix:/run/dlcount/listen.sock,nohostname,tag=dlcount dlcount;$' /etc/nginx/conf.d/dlcount.conf
check "D: the stats snippet has the --allow network" grep -q '^    allow 10.0.0.0/8;$' /etc/nginx/snippets/dlcount-stats.conf
check_eq "D: the socket is dlcount's, 0660 for nginx's www-data" "$(stat -c '%A %U %G' /run/dlcount/listen.sock)" "srw-rw---- dlcount www-data"
pids=$(listener_pids)
check "D: the listener runs" test -n "$pids"
check_eq "D: ... as dlcount" "$(for p in $pids; do ps -o user= -p "$p"; done | sort -u | tr -d ' ')" dlcount
check_eq "D: ... its pid file, in dlcount's directory" "$(cat /run/dlcount/listen.pid 2>/dev/null)" "$pids"
check "D: log rotation for listen.log (no systemd)" logrotate -d /etc/logrotate.d/dlcount-listen
check_eq "D: the Unix socket queue raised (sysctl)" "$(cat /proc/sys/net/unix/max_dgram_qlen)" 1024
check_eq "D: the ISO answers 200" "$(status_of 127.0.0.1 "/isos/$ISO")" 200
check_eq "D: ... from an admin address too" "$(status_of 10.9.9.9 "/isos/$ISO")" 200
want="{\"/isos/$ISO\": {\"$MONTH\": 3}}"
counted=no
for _ in $(seq 1 50); do
    got=$(/usr/local/bin/dlcount-pipe report --config /etc/dlcount/dlcount.toml --json 2>/dev/null | tr -d ' \n')
    [ "$got" = "$(tr -d ' \n' <<<"$want")" ] && { counted=yes; break; }
    sleep 0.2
done
check_eq "D: report: the imported download and the two live ones" "$counted" yes
[ "$counted" = yes ] || diag "report: $got"
check_eq "D: /.stats/ served to this host" "$(status_of 127.0.0.1 /.stats/)" 200
check_eq "D: /.stats/ served to the --allow network" "$(status_of 10.9.9.9 /.stats/counts.json)" 200
check_eq "D: /.stats/ refused to another client" "$(status_of 127.0.0.3 /.stats/)" 403
check_eq "D: /%2estats/ refused to another client" "$(status_of 127.0.0.3 /%2estats/counts.json)" 403
check "D: nginx's own dlcount.log has the lines" grep -q "GET /isos/$ISO HTTP/1.1\" 200" /var/log/nginx/dlcount.log

rc=0
out=$("$INSTALL" --nginx --binary "$BIN" --root "$R" --site --allow 10.0.0.0/8 2>&1) || rc=$?
show "$out"
check_eq "D: second install: exit 0" "$rc" 0
check "D: second install: conf up to date" grep -q '/etc/nginx/conf.d/dlcount.conf is up to date' <<<"$out"
check "D: second install: a listener runs again" test -n "$(listener_pids)"
# logrotate rotates the listener's messages (copytruncate: it keeps writing).
logrotate -f -s /run/e2e-logrotate.state /etc/logrotate.d/dlcount-listen
check "D: logrotate rotated listen.log" test -s /var/log/dlcount/listen.log.1

# A listener killed with SIGKILL leaves its pid file; the pid in it now
# belongs to a stranger (a reused pid, played by a sleep): the next install
# must not signal it, and says the file was stale.
pids=$(listener_pids)
kill -KILL $pids
pa_wait_no_pids_with "dlcount-pipe listen --config" 15 || true
check "D: SIGKILL leaves the pid file behind" test -s /run/dlcount/listen.pid
sleep 600 &
stranger=$!
echo "$stranger" >/run/dlcount/listen.pid
rc=0
out=$("$INSTALL" --nginx --binary "$BIN" --root "$R" --site --allow 10.0.0.0/8 2>&1) || rc=$?
show "$out"
check_eq "D: install over a stale pid file: exit 0" "$rc" 0
check "D: ... the stranger was not signalled" kill -0 "$stranger"
check "D: ... saying the pid file was stale" grep -q "/run/dlcount/listen.pid is stale (pid $stranger is not" <<<"$out"
pids=$(listener_pids)
check "D: ... a listener runs again" test -n "$pids"
check_eq "D: ... its pid in the pid file" "$(cat /run/dlcount/listen.pid 2>/dev/null)" "$pids"
kill "$stranger" 2>/dev/null || true

rc=0
out=$("$INSTALL" --uninstall 2>&1) || rc=$?
show "$out"
check_eq "D: uninstall exits 0" "$rc" 0
check "D: after uninstall /.stats/ is 200 for nobody" stats_closed
check "D: the listener stopped" pa_wait_no_pids_with "dlcount-pipe listen --config" 15
check "D: ... and removed its own pid file" test ! -e /run/dlcount/listen.pid
check "D: ... nothing else had to" absent_from 'left /run/dlcount/listen.pid behind' <(printf '%s\n' "$out")
check "D: log rotation removed" test ! -e /etc/logrotate.d/dlcount-listen
check_eq "D: /etc/nginx exactly as found" "$(nginx_tree)" "$NGINX_BEFORE"
check_eq "D: nginx serves the stock page again" "$(body_of / | sha256sum)" "$DEBIAN_INDEX"
check "D: the sysctl file removed" test ! -e /etc/sysctl.d/60-dlcount.conf
check "D: the record is gone" test ! -e /etc/dlcount/nginx-changes
check "D: counts kept" test -s /var/lib/dlcount/dlcount.sqlite
rc=0
"$INSTALL" --uninstall --purge >/dev/null 2>&1 || rc=$?
check_eq "D: purge exits 0" "$rc" 0
check "D: purge: user dlcount removed" absent_user dlcount
check "D: purge: /var/log/dlcount, /etc/dlcount, /var/lib/dlcount removed" \
    test ! -e /var/log/dlcount -a ! -e /etc/dlcount -a ! -e /var/lib/dlcount
nginx -s quit 2>/dev/null || true
results_summary
