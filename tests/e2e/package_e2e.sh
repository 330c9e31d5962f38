#!/usr/bin/env bash
# End-to-end test of the Debian package (scripts/build-deb.sh): it builds,
# its contents are right, `apt-get install ./dlcount_*.deb` installs it for
# real, a2enconf (through apache2-maintscript-helper) enables its conf, an
# Apache that includes conf-enabled/ as Debian's does counts a download and
# guards the statistics, an upgrade keeps everything, and `apt-get remove` /
# `apt-get purge` leave nothing private exposed and nothing of dlcount's
# behind. Then (D) the README's `scripts/install.sh --deb FILE`, with no
# cargo on PATH, against the sandbox's own system Apache, and its
# `--uninstall --purge`.
#
# Like install_e2e.sh, everything happens in a throwaway sandbox of Linux
# namespaces (unshare): copy-on-write overlays over /etc, /usr, /var/lib,
# /var/cache, /var/log and /var/www, a fresh /run, its own network and PID
# namespaces. dpkg's database is under /var/lib, so the package is installed
# and removed inside the sandbox only: the machine's own dpkg, users and
# Apache never see it. The Apache is a private instance (tests/e2e/lib.sh:
# its own ServerRoot, loopback, a free port) whose configuration does what
# Debian's apache2.conf does: IncludeOptional conf-enabled/.
#
# Usage: tests/e2e/package_e2e.sh [PATH-TO-dlcount-pipe]  (default target/release/dlcount-pipe)
# Needs root. Output: "ok - ..." / "not ok - ..." lines and "N passed, M failed[, K skipped]".
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
    [ "$(id -u)" -eq 0 ] || pa_die "needs root (namespaces, overlay mounts, dpkg)"
    [ -x "$BIN_SRC" ] || pa_die "no executable dlcount-pipe at $BIN_SRC (build it: cargo build --release)"
    pa_require_tools apache2:/usr/sbin/apache2 curl:curl python3:python3 iproute2:ip util-linux:unshare \
        binutils:objdump
fi
sandbox_enter "$HERE/package_e2e.sh" package-e2e "$BIN_SRC"

# ------------------------------------------------------------ inside: PID 1
sandbox_overlay /etc /usr /var/lib /var/cache /var/log /var/www

absent_user() { ! getent passwd "$1" >/dev/null; }
absent_group() { ! getent group "$1" >/dev/null; }
status_of() { # status_of SOURCE URL-PATH
    curl -sS --max-time 30 --interface "$1" -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$PA_PORT$2" || true
}
# stats_exposed: /.stats/, its page and counts.json are 200 for nobody.
stats_closed() {
    local who path code
    for who in 127.0.0.1 127.0.0.3; do
        for path in /.stats/ /.stats/counts.json /.stats/index.html; do
            code=$(status_of "$who" "$path")
            if [ "$code" = 200 ]; then
                diag "$path answers 200 to $who"
                return 1
            fi
        done
    done
}
stats_closed_web() { # the same through the system Apache (port 80)
    local who path code
    for who in 127.0.0.1 10.9.9.9 127.0.0.3; do
        for path in /.stats/ /.stats/counts.json /.stats/index.html; do
            code=$(web_status "$who" "$path")
            if [ "$code" = 200 ]; then
                diag "$path answers 200 to $who"
                return 1
            fi
        done
    done
}
apt_quiet() { DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 "$@" 2>&1; }

TZ=$(pa_noon_tz)
export TZ
MONTH=$(date +%Y-%m)
ISO=linuxvillage-24.04-server-amd64.iso
ROOT=/var/www/file-server
TOML=/etc/dlcount/dlcount.toml
CONF=/etc/apache2/conf-available/dlcount.conf

# ------------------------------------------------------------------ build
rc=0
built=$("$REPO/scripts/build-deb.sh" --binary "$BIN_SRC" --out "$SANDBOX/deb" 2>&1) || rc=$?
check_eq "build-deb.sh exits 0" "$rc" 0
DEB=$(printf '%s\n' "$built" | tail -n 1)
VERSION=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$REPO/Cargo.toml" | head -n 1)
check_eq "the .deb is named dlcount_VERSION_ARCH.deb" "$DEB" \
    "$SANDBOX/deb/dlcount_${VERSION}_$(dpkg --print-architecture).deb"
[ -s "$DEB" ] || { show "$built"; pa_die "no package built"; }

contents=$(dpkg-deb -c "$DEB" | awk '{ print $1, $2, $6 }')
for entry in \
    "-rwxr-xr-x root/root ./usr/bin/dlcount-pipe" \
    "-rw-r--r-- root/root ./etc/apache2/conf-available/dlcount.conf" \
    "-rw-r--r-- root/root ./etc/dlcount/dlcount.toml" \
    "-rw-r--r-- root/root ./usr/share/man/man1/dlcount-pipe.1.gz" \
    "-rw-r--r-- root/root ./usr/share/man/man1/dlcount-pipe-import.1.gz" \
    "-rw-r--r-- root/root ./usr/share/bash-completion/completions/dlcount-pipe" \
    "-rw-r--r-- root/root ./usr/share/zsh/vendor-completions/_dlcount-pipe" \
    "-rw-r--r-- root/root ./usr/share/fish/vendor_completions.d/dlcount-pipe.fish" \
    "-rw-r--r-- root/root ./usr/share/doc/dlcount/copyright"; do
    check "dpkg-deb -c: ${entry##* }" grep -qxF -- "$entry" <<<"$contents"
done
check_eq "dpkg-deb -c: nothing under /usr/local or /var" \
    "$(grep -c -e ' \./usr/local' -e ' \./var' <<<"$contents" || true)" 0
check_eq "dpkg-deb -I: conffiles" "$(dpkg-deb -I "$DEB" conffiles)" \
    "$(printf '%s\n' /etc/apache2/conf-available/dlcount.conf /etc/dlcount/dlcount.toml)"
check_eq "dpkg-deb -f: Package Version" "$(dpkg-deb -f "$DEB" Package Version | tr '\n' ' ')" \
    "Package: dlcount Version: $VERSION "
check "dpkg-deb -f: Depends on libc6 and adduser" \
    grep -qE '^libc6 \(>= 2\.[0-9]+\).*, adduser$' <<<"$(dpkg-deb -f "$DEB" Depends)"
check_eq "dpkg-deb -I: maintainer scripts" \
    "$(dpkg-deb -I "$DEB" | awk '$NF ~ /^(postinst|prerm|postrm)$/ || $(NF-1) ~ /^(postinst|prerm|postrm)$/' | grep -o 'postinst\|prerm\|postrm' | sort | tr '\n' ' ')" \
    "postinst postrm prerm "
mkdir "$SANDBOX/x"
dpkg-deb -x "$DEB" "$SANDBOX/x"
check "the packaged binary is stripped (no .debug_line)" \
    test -z "$(objdump -h "$SANDBOX/x/usr/bin/dlcount-pipe" | grep -F .debug_line || true)"
check "the packaged conf runs /usr/bin/dlcount-pipe" \
    grep -qxF 'GlobalLog "|/usr/bin/dlcount-pipe --config /etc/dlcount/dlcount.toml" dlcount' "$SANDBOX/x$CONF"
check_eq "... and is apache-conf/dlcount.conf otherwise" \
    "$(diff "$REPO/apache-conf/dlcount.conf" "$SANDBOX/x$CONF" | grep -c '^[<>]' || true)" 4
if command -v lintian >/dev/null 2>&1; then
    lint=$(lintian "$DEB" 2>&1 | grep -v 'running with root privileges' || true)
    check_eq "lintian: no errors or warnings" "$lint" ""
else
    skip "lintian: no errors or warnings" "lintian is not installed"
fi

# ---------------------------------------------------------------- install
rc=0
out=$(apt_quiet install "$DEB") || rc=$?
check_eq "apt-get install ./dlcount_*.deb exits 0" "$rc" 0
[ "$rc" = 0 ] || show "$out"
check_eq "dpkg: installed" "$(dpkg-query -W -f '${Status}' dlcount 2>/dev/null)" "install ok installed"
check "the binary is on PATH at /usr/bin" test "$(command -v dlcount-pipe)" = /usr/bin/dlcount-pipe
check_eq "dlcount-pipe --version" "$(dlcount-pipe --version)" "dlcount-pipe $VERSION"
uid=$(id -u dlcount 2>/dev/null || echo 99999)
check "system user dlcount (uid below 1000)" test "$uid" -lt 1000
check_eq "its shell" "$(getent passwd dlcount | cut -d: -f7)" /usr/sbin/nologin
check_eq "/var/lib/dlcount: owner and mode" "$(stat -c '%U:%G %a' /var/lib/dlcount 2>&1)" "dlcount:dlcount 750"
check_eq "the database exists, dlcount's" "$(stat -c '%U' /var/lib/dlcount/dlcount.sqlite 2>&1)" dlcount
check_eq "dpkg knows the two conffiles" \
    "$(dpkg-query -W -f '${Conffiles}\n' dlcount | awk 'NF { print $1 }')" \
    "$(printf '%s\n' /etc/apache2/conf-available/dlcount.conf /etc/dlcount/dlcount.toml)"
check "dlcount.toml: site_title left to the default" grep -qx '#site_title = "Linux Village downloads"' "$TOML"
check_eq "a2enconf by the maintainer scripts: conf-enabled/dlcount.conf" \
    "$(readlink /etc/apache2/conf-enabled/dlcount.conf)" ../conf-available/dlcount.conf
check "... marked as enabled by the package, not the admin" test -e /var/lib/apache2/conf/enabled_by_maint/dlcount
check "man page: dlcount-pipe(1)" grep -q '^\.TH dlcount-pipe 1 ' <(zcat /usr/share/man/man1/dlcount-pipe.1.gz)
check "man page: dlcount-pipe-import(1) documents --detach" \
    grep -q 'detach' <(zcat /usr/share/man/man1/dlcount-pipe-import.1.gz)
if command -v man >/dev/null 2>&1; then
    check_eq "man -w dlcount-pipe" "$(man -w dlcount-pipe 2>&1)" /usr/share/man/man1/dlcount-pipe.1.gz
fi
# Bash completion, run: "dlcount-pipe imp<TAB>" offers the two import commands.
completed=$(bash -c '. /usr/share/bash-completion/completions/dlcount-pipe
COMP_WORDS=(dlcount-pipe imp); COMP_CWORD=1; COMP_LINE="dlcount-pipe imp"; COMP_POINT=${#COMP_LINE}
fn=$(complete -p dlcount-pipe | sed -n "s/.*-F \([^ ]*\).*/\1/p")
"$fn" dlcount-pipe imp dlcount-pipe; printf "%s\n" "${COMPREPLY[@]}"' 2>&1 | sort | tr '\n' ' ')
check_eq "bash completion: dlcount-pipe imp<TAB>" "$completed" "import import-json "
check "zsh completion registers #compdef dlcount-pipe" grep -qx '#compdef dlcount-pipe' /usr/share/zsh/vendor-completions/_dlcount-pipe
check "fish completion completes report" grep -q -- '-a "report"' /usr/share/fish/vendor_completions.d/dlcount-pipe.fish

# ------------------------------------- a private Apache, as Debian's includes it
# The root, set up as the README says for the package: dlcount may create
# its pages in ROOT (group, g+w, sticky bit) and owns ROOT/.stats.
mkdir -p "$ROOT/isos"
truncate -s 1M "$ROOT/isos/$ISO"
touch -d '-10 minutes' "$ROOT/isos/$ISO"
chmod -R a+rX "$ROOT"
chgrp dlcount "$ROOT"
chmod g+w,+t,o-w "$ROOT"
install -d -o dlcount -g dlcount -m 0755 "$ROOT/.stats"
rc=0
out=$(dlcount-pipe check --config "$TOML" 2>&1) || rc=$?
check_eq "dlcount-pipe check accepts the shipped dlcount.toml" "$rc" 0
[ "$rc" = 0 ] || show "$out"
PA_DIR=$SANDBOX/apache
mkdir -p "$PA_DIR"
# What Debian's apache2.conf does: grant /var/www, IncludeOptional conf-enabled/*.conf.
printf '%s\n' '<Directory /var/www/>' '    Require all granted' '</Directory>' \
    'IncludeOptional /etc/apache2/conf-enabled/dlcount.conf' >"$SANDBOX/conf-enabled.conf"
pa_setup "$(pa_free_port)" "$ROOT" "$SANDBOX/conf-enabled.conf"
trap 'pa_stop' EXIT
check "the private Apache's configuration is valid" pa_configtest
pa_start
for _ in $(seq 1 50); do [ -s "$ROOT/.stats/index.html" ] && break; sleep 0.1; done
check "the logger rendered the public page" grep -q "$ISO" "$ROOT/index.html"
check_eq "the ISO is served" "$(status_of 127.0.0.1 "/isos/$ISO")" 200
check_eq "/.stats/ from this host" "$(status_of 127.0.0.1 /.stats/)" 200
check_eq "/.stats/counts.json from elsewhere refused" "$(status_of 127.0.0.3 /.stats/counts.json)" 403
check_eq "/.stats/ from elsewhere refused" "$(status_of 127.0.0.3 /.stats/)" 403
# report --json, compact (it pretty-prints).
report() { dlcount-pipe report --config "$TOML" --json 2>&1 | python3 -c 'import json, sys
print(json.dumps(json.load(sys.stdin), separators=(",", ":")))' 2>&1; }
want="{\"/isos/$ISO\":{\"$MONTH\":1}}"
for _ in $(seq 1 100); do [ "$(report)" = "$want" ] && break; sleep 0.1; done
check_eq "the download is counted" "$(report)" "$want"

# An upgrade (here the same version again): prerm/postinst of an upgrade
# leave the statistics, the enabled conf, the admin's edits and the counts.
printf '# edited by the admin\n' >>"$TOML"
# 0.1.0 kept the index.html scripts/install.sh found in the root in
# /var/lib/dlcount, which dlcount can write: the upgrade takes it over into
# root's own /var/lib/dlcount-install (purge puts it back).
BEFORE_PAGE='<p>before dlcount</p>'
printf '%s\n' "$BEFORE_PAGE" >/var/lib/dlcount/index.html.pre-dlcount
chmod 0644 /var/lib/dlcount/index.html.pre-dlcount
rc=0
out=$(apt_quiet -o Dpkg::Options::=--force-confold install --reinstall "$DEB") || rc=$?
check_eq "reinstall (upgrade path) exits 0" "$rc" 0
[ "$rc" = 0 ] || show "$out"
check_eq "upgrade: 0.1.0's saved index.html taken over by root" \
    "$(stat -c '%U:%G %a' /var/lib/dlcount-install/index.html.pre-dlcount 2>&1) $(cat /var/lib/dlcount-install/index.html.pre-dlcount 2>&1)" \
    "root:root 644 $BEFORE_PAGE"
check "upgrade: ... and gone from /var/lib/dlcount" test ! -e /var/lib/dlcount/index.html.pre-dlcount
check_eq "upgrade: /var/lib/dlcount-install is root's alone" \
    "$(stat -c '%U:%G %a' /var/lib/dlcount-install 2>&1)" "root:root 700"
check "reinstall: ROOT/.stats kept" test -s "$ROOT/.stats/index.html"
check "reinstall: conf still enabled" test -L /etc/apache2/conf-enabled/dlcount.conf
check_eq "reinstall: the admin's dlcount.toml kept" "$(tail -n 1 "$TOML")" "# edited by the admin"
check_eq "reinstall: counts kept" "$(report)" "$want"

# The user dlcount owns /var/lib/dlcount and its own page in the root: it
# can put links there. Root's maintainer scripts must write, read and
# remove nothing through them. prerm used to write the root's path into
# /var/lib/dlcount/package-root; dlcount's page becomes a dangling link
# into /etc/profile.d.
printf 'precious\n' >/etc/e2e-victim
chmod 0600 /etc/e2e-victim
runuser -u dlcount -- ln -sfn /etc/e2e-victim /var/lib/dlcount/package-root || true
runuser -u dlcount -- ln -sfn /etc/profile.d/e2e-evil.sh "$ROOT/index.html" || true
check "(set-up) dlcount's links are in place" test -L /var/lib/dlcount/package-root -a -L "$ROOT/index.html"

# ----------------------------------------------------------------- remove
rc=0
out=$(apt_quiet remove dlcount) || rc=$?
check_eq "apt-get remove exits 0" "$rc" 0
[ "$rc" = 0 ] || show "$out"
check "remove: ROOT/.stats removed" test ! -e "$ROOT/.stats"
check "remove: conf disabled" test ! -e /etc/apache2/conf-enabled/dlcount.conf
check "remove: ... marked as disabled by the package" test -e /var/lib/apache2/conf/disabled_by_maint/dlcount
check "remove: binary gone" test ! -e /usr/bin/dlcount-pipe
check "remove: the conffiles and the counts stay" test -f "$CONF" -a -f "$TOML" -a -f /var/lib/dlcount/dlcount.sqlite
check "remove: dlcount may no longer write into the root" test -z "$(find "$ROOT" -maxdepth 0 -perm -g+w)"
check "after remove, /.stats/ is 200 for nobody (old configuration)" stats_closed
# The reload the maintainer scripts gave the system's Apache.
pa_graceful
check "after remove and reload, /.stats/ is 200 for nobody" stats_closed
check "the old logger exits" pa_wait_no_pids_with "dlcount-pipe --config $TOML" 15
check "... without writing ROOT/.stats again" test ! -e "$ROOT/.stats"
check_eq "Apache still serves the ISO" "$(status_of 127.0.0.1 "/isos/$ISO")" 200
check_eq "remove: nothing written through dlcount's link /var/lib/dlcount/package-root" \
    "$(stat -c '%U %a' /etc/e2e-victim) $(cat /etc/e2e-victim)" "root 600 precious"

# Before purge dlcount names another root in /var/lib/dlcount/package-root
# (a link of its own to a directory of root's) and leaves a page of its
# own to be put back: purge used to take both.
mkdir -p /etc/e2e-decoy/.stats
printf 'precious\n' >/etc/e2e-decoy/.stats/keep
runuser -u dlcount -- sh -c 'cd /var/lib/dlcount && rm -f package-root index.html.pre-dlcount &&
    ln -s /etc/e2e-decoy decoy && printf "/var/lib/dlcount/decoy\n" >package-root &&
    printf "evil\n" >index.html.pre-dlcount' || true
check_eq "(set-up) dlcount names its own root and page" \
    "$(stat -c %U /var/lib/dlcount/package-root /var/lib/dlcount/decoy /var/lib/dlcount/index.html.pre-dlcount 2>&1 | tr '\n' ' ')" \
    "dlcount dlcount dlcount "

# ------------------------------------------------------------------ purge
rc=0
out=$(apt_quiet purge dlcount) || rc=$?
check_eq "apt-get purge exits 0" "$rc" 0
show "$out"
check_eq "purge: no crontab noise" "$(grep -ci crontab <<<"$out" || true)" 0
check_eq "dpkg: not installed" "$(dpkg-query -W -f '${Status}' dlcount 2>/dev/null || true)" ""
check "purge: user removed" absent_user dlcount
check "purge: group removed" absent_group dlcount
check "purge: /var/lib/dlcount removed" test ! -e /var/lib/dlcount
check "purge: /etc/dlcount removed" test ! -e /etc/dlcount
check "purge: conf-available/dlcount.conf removed" test ! -e "$CONF"
check_eq "purge: no apache2 state marker left for dlcount" \
    "$(find /var/lib/apache2 -name dlcount | wc -l)" 0
check_eq "purge: no file of dlcount's left in the root" "$(find "$ROOT" -uid "$uid" | wc -l)" 0
check "purge: no generated page left" test ! -e "$ROOT/.stats"
check_eq "purge: the index.html the root had before dlcount is back, root's" \
    "$(stat -c '%F %U:%G %a' "$ROOT/index.html" 2>&1) $(cat "$ROOT/index.html" 2>&1)" \
    "regular file root:root 644 $BEFORE_PAGE"
check "purge: nothing written through the link dlcount put in place of its page" \
    test ! -e /etc/profile.d/e2e-evil.sh -a ! -L /etc/profile.d/e2e-evil.sh
check "purge: nothing removed in a root dlcount named in /var/lib/dlcount" test -f /etc/e2e-decoy/.stats/keep
check "purge: ... nor written there" test ! -e /etc/e2e-decoy/index.html
check "purge: /var/lib/dlcount-install removed" test ! -e /var/lib/dlcount-install
check_eq "purge: root given back" "$(stat -c '%U %G %A' "$ROOT" | cut -c1-20)" "root root drwxr-xr-x"
pa_graceful
check "after purge, /.stats/ is 200 for nobody" stats_closed
pa_stop
trap - EXIT

# ------------------------- scripts/install.sh --deb, with the system's Apache
# The admin's one command from the README, on a stock Debian (000-default
# the only site) and with no Rust toolchain on PATH: the package instead of
# a build, the root, the site, the statistics' allow-list; then --uninstall
# --purge gives everything back.
sites_enabled() { (cd /etc/apache2/sites-enabled && ls) | tr '\n' ' '; }
mods_enabled() { (cd /etc/apache2/mods-enabled && ls) | tr '\n' ' '; }
markers() { find /var/lib/apache2 -mindepth 3 -maxdepth 3 -type f 2>/dev/null | sort | tr '\n' ' '; }
web_status() { # web_status SOURCE URL-PATH: through the system Apache on port 80
    curl -sS --max-time 30 --interface "$1" -o /dev/null -w '%{http_code}' "http://localhost$2" || true
}
ip addr add 10.9.9.9/32 dev lo
check_eq "D: stock Debian: 000-default is the only site" "$(sites_enabled)" "000-default.conf "
SITES_BEFORE=$(sites_enabled)
MODS_BEFORE=$(mods_enabled)
MARKERS_BEFORE=$(markers)
rm -f /var/log/apache2/access.log*
apache2ctl start 2>&1 | sed 's/^/# /'
NOCARGO=/usr/sbin:/usr/bin:/sbin:/bin
rc=0
out=$(env PATH=$NOCARGO "$REPO/scripts/install.sh" --deb "$DEB" --root "$ROOT" --site --allow 10.0.0.0/8 2>&1) || rc=$?
show "$out"
check_eq "D: install.sh --deb: exit 0" "$rc" 0
check_eq "D: ... ends with the URL" "$(printf '%s\n' "$out" | tail -n 1 | grep -o 'http://[^ ]*$' || true)" "http://localhost/"
check "D: ... installed the package, built nothing" grep -qxF "dlcount-install: installing the package $DEB" <<<"$out"
check_eq "D: ... no import summary of nothing (0 lines)" "$(grep -c -e 'read 1 file' -e ' 0 lines' <<<"$out" || true)" 0
check_eq "D: dpkg: installed" "$(dpkg-query -W -f '${Status}' dlcount 2>/dev/null)" "install ok installed"
check "D: no binary in /usr/local/bin" test ! -e /usr/local/bin/dlcount-pipe
check "D: the package's conf got the root" grep -q "<Directory \"$ROOT\">" "$CONF"
check "D: ... and the --allow network" grep -q '^ *Require ip 10.0.0.0/8$' "$CONF"
check "D: ... and still runs /usr/bin/dlcount-pipe" \
    grep -qxF 'GlobalLog "|/usr/bin/dlcount-pipe --config /etc/dlcount/dlcount.toml" dlcount' "$CONF"
check "D: ... adapted in place, no dlcount.conf.new" test ! -e "$CONF.new"
check_eq "D: dlcount.toml root" "$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["root"])' "$TOML")" "$ROOT"
check_eq "D: the ISO is served" "$(web_status 127.0.0.1 "/isos/$ISO")" 200
for _ in $(seq 1 100); do [ "$(report)" = "$want" ] && break; sleep 0.1; done
check_eq "D: the download is counted" "$(report)" "$want"
for _ in $(seq 1 50); do [ -s "$ROOT/.stats/index.html" ] && break; sleep 0.1; done
check_eq "D: /.stats/ from the --allow network" "$(web_status 10.9.9.9 /.stats/)" 200
check_eq "D: /.stats/ from elsewhere refused" "$(web_status 127.0.0.3 /.stats/)" 403
rc=0
conf_sum=$(sha256sum "$CONF" "$TOML")
out=$(env PATH=$NOCARGO "$REPO/scripts/install.sh" --root "$ROOT" --site --allow 10.0.0.0/8 2>&1) || rc=$?
check_eq "D: again without --deb: exit 0" "$rc" 0
check "D: ... it uses the installed package" grep -qxF "dlcount-install: using the installed package dlcount (/usr/bin/dlcount-pipe)" <<<"$out"
check_eq "D: ... conf and toml unchanged" "$(sha256sum "$CONF" "$TOML")" "$conf_sum"
uid=$(id -u dlcount)
rc=0
out=$(env PATH=$NOCARGO "$REPO/scripts/install.sh" --uninstall --purge 2>&1) || rc=$?
show "$out"
check_eq "D: --uninstall --purge: exit 0" "$rc" 0
check "D: after it, /.stats/ is 200 for nobody" stats_closed_web
check_eq "D: the package is purged" "$(dpkg-query -W -f '${Status}' dlcount 2>/dev/null || true)" ""
check "D: binary, conf, toml, counts gone" test ! -e /usr/bin/dlcount-pipe -a ! -e "$CONF" -a ! -e /etc/dlcount -a ! -e /var/lib/dlcount
check "D: user removed" absent_user dlcount
check_eq "D: no crontab noise" "$(grep -ci crontab <<<"$out" || true)" 0
check_eq "D: sites as before" "$(sites_enabled)" "$SITES_BEFORE"
check_eq "D: modules as before" "$(mods_enabled)" "$MODS_BEFORE"
check_eq "D: Apache's state markers as before" "$(markers)" "$MARKERS_BEFORE"
check_eq "D: no file of dlcount's left in the root" "$(find "$ROOT" -uid "$uid" | wc -l)" 0
check_eq "D: root given back" "$(stat -c '%U %G %A' "$ROOT" | cut -c1-20)" "root root drwxr-xr-x"
check_eq "D: ... with the index.html it had before" "$(cat "$ROOT/index.html" 2>&1)" "$BEFORE_PAGE"
check "D: /var/lib/dlcount-install removed" test ! -e /var/lib/dlcount-install
apache2ctl stop >/dev/null 2>&1 || true
results_summary
