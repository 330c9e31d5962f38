#!/usr/bin/env bash
# Install (or remove) dlcount on a Debian/Ubuntu Apache 2.4 server. Run as root.
#
#   scripts/install.sh [--deb FILE | --binary PATH] [--root DIR] [--site [--server-name NAME]]
#                      [--site-title TEXT] [--allow CIDR]... [--import-logs]
#                      [--force-conf] [--dry-run]
#   scripts/install.sh --nginx [--deb FILE | --binary PATH] [--root DIR] [--site [--server-name NAME]]
#                      [--site-title TEXT] [--allow CIDR]... [--import-logs] [--force-conf] [--dry-run]
#   scripts/install.sh --uninstall [--purge] [--dry-run]
#
# --nginx: the same on a Debian nginx server, counted live through
# `dlcount-pipe listen` (nginx sends its access lines to a syslog socket):
# steps 1-4 as below, then, for step 5, nginx's conf snippet, the listener
# service and the /.stats/ guard, `nginx -t` before any reload, and for
# steps 6 and 7 nginx's logs and server — see scripts/nginx/install-steps.sh.
# --uninstall takes back what --nginx did too (recorded in
# /etc/dlcount/nginx-changes), and only that.
#
# Install, idempotent (run it again after an upgrade, with the same flags):
#  1. the program. With --deb FILE (a dlcount_*.deb, see scripts/build-deb.sh),
#     or without --binary when the package dlcount is installed already: the
#     package (apt-get install FILE), no toolchain needed; its binary is
#     /usr/bin/dlcount-pipe and the steps below adapt the package's
#     conffiles while dpkg still has them unmodified. Otherwise it takes
#     --binary PATH, or builds with `cargo build --release` here (after
#     checking that cargo is at least Cargo.toml's rust-version), checks
#     that it runs, and installs it as /usr/local/bin/dlcount-pipe atomically
#     (temporary file in the same directory, then rename): Apache execs it on
#     every graceful restart and exits if the file is missing at that moment;
#  2. creates the system user dlcount and /var/lib/dlcount (dlcount, 0750);
#  3. writes /etc/dlcount/dlcount.toml only if absent (--root, --site-title);
#  4. lets dlcount write the pages into the download root (see below), then
#     runs `dlcount-pipe check --config /etc/dlcount/dlcount.toml` and stops,
#     with its message and before Apache is touched, if the check fails;
#  5. installs /etc/apache2/conf-available/dlcount.conf (--root, --allow),
#     a2enmod headers, a2enconf dlcount; with --site also
#     sites-available/dlcount.conf, a site whose DocumentRoot is the root
#     (see "Serving the root" below); apache2ctl configtest, and reloads
#     Apache only if the test passed; if it failed what this run enabled is
#     disabled again and the script exits non-zero with Apache's message;
#  6. --import-logs: counts /var/log/apache2/access.log* (plain and .gz)
#     and renders the pages again (they are rendered once before Apache is
#     reloaded, after the database is created);
#  7. checks with curl that http://localhost/ (http://NAME/ with
#     --server-name) serves the root and answers 200, and ends with that URL
#     as its last line; if it does not, the last lines say what to do and the
#     exit status is 3 (everything else is installed: fix it and run again).
# An existing dlcount.conf that differs from the one this run would write is
# kept (you may have enabled the password in it); the new one is written
# beside it as dlcount.conf.new. --force-conf replaces it (backup kept).
#
# What this script enables in Apache (module headers, conf dlcount, site
# dlcount) and disables (site 000-default) is recorded in
# /etc/dlcount/apache-changes, one "enmod NAME", "enconf NAME", "ensite NAME"
# or "dissite NAME" per line, only when this script made the change: a module
# that was enabled before is not recorded and so never disabled by it.
#
# --uninstall first makes the private statistics unreachable (removes
# ROOT/.stats and takes dlcount's write access to ROOT away, so that a logger
# still finishing a long download cannot write them again), then undoes the
# recorded Apache changes and reloads Apache (so no restart ever looks for a
# missing binary), then removes the conf, the site and the binary. It keeps
# the counts (/var/lib/dlcount), /etc/dlcount, the public ROOT/index.html and
# the user; --purge removes those too, puts back the index.html that was there
# before dlcount (if any), and gives the download root back. With the package
# installed, `apt-get remove dlcount` takes the place of removing the conf and
# the binary (its prerm disables the conf), and --purge ends with
# `apt-get purge dlcount`.
#
# --dry-run prints every command that would change the system, changes nothing.
#
# Serving the root. Debian's stock site 000-default serves /var/www/html, so
# a root elsewhere (the default /var/www/file-server) is not served by
# anything until a site points at it:
#  - --site on a server whose only site is the stock 000-default (a fresh
#    download server): installs the site dlcount as the default site for
#    port 80 and disables 000-default (recorded, re-enabled on --uninstall);
#  - --site --server-name NAME: a name-based site for NAME beside the others,
#    which stay untouched;
#  - --site without --server-name when other sites are enabled: refused
#    before anything changes (a default site would take every request that
#    no other site claims);
#  - without --site the Apache sites are left alone; step 7 tells whether
#    the root is served, and if not, what to run.
#
# Ownership of the download root (ROOT, default /var/www/file-server):
# the logger runs as dlcount and writes ROOT/.stats/{index.html,counts.json}
# and ROOT/index.html, each as a temporary file in the same directory followed
# by a rename (readers never see half a page). So:
#  - ROOT/.stats is owned by dlcount (0755: Apache, running as www-data, only
#    reads; the page holds totals, no addresses);
#  - ROOT itself must let dlcount create files. It gets group dlcount, g+w, and
#    the sticky bit (+t, as on /tmp): in a sticky directory a user may only
#    rename over or delete files it owns, so dlcount can replace its own
#    index.html but can neither delete nor replace the ISOs, checksums or
#    folders of the site's owner. The owner of ROOT keeps full control.
#    If ROOT already belongs to another group (an uploaders' group, say), the
#    script stops rather than take it away; see the message it prints.
#  - an existing ROOT/index.html not owned by dlcount is copied to
#    /var/lib/dlcount-install/index.html.pre-dlcount and handed to dlcount,
#    which replaces it at the first render.
#
# Root never trusts a path the user dlcount can change: what this script
# keeps for later is in /var/lib/dlcount-install (root's, 0700), never in
# /var/lib/dlcount (dlcount's: any file there could become a link to write
# through); in ROOT and ROOT/.stats, where dlcount may have put links in
# place of its own files, links are removed, never followed or chowned, and
# files root writes there get fresh names of root's (mktemp) first. The
# temporary copies dlcount reads are in root-owned directories under
# /var/lib that dlcount can enter but not change.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=scripts/toolchain.sh
. "$HERE/toolchain.sh"

BIN_DEST=/usr/local/bin/dlcount-pipe
ETC_DIR=/etc/dlcount
TOML=$ETC_DIR/dlcount.toml
CHANGES=$ETC_DIR/apache-changes
MARKERS=$ETC_DIR/apache-markers
A2_STATE=/var/lib/apache2
STATE_DIR=/var/lib/dlcount
SAVE_DIR=/var/lib/dlcount-install
SAVED_INDEX=$SAVE_DIR/index.html.pre-dlcount
CONF_NAME=dlcount
CONF_DEST=/etc/apache2/conf-available/$CONF_NAME.conf
SITE_NAME=dlcount
SITE_DEST=/etc/apache2/sites-available/$SITE_NAME.conf
STOCK_SITE=000-default
STOCK_DOCROOT=/var/www/html
LOG_GLOB_DIR=/var/log/apache2
USER_NAME=dlcount
DEFAULT_ROOT=/var/www/file-server

binary=""
deb=""
root=""
site_title=""
allow=()
import_logs=0
uninstall=0
purge=0
dry_run=0
force_conf=0
site=0
server_name=""
nginx=0

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
say() { printf 'dlcount-install: %s\n' "$*"; }
die() { printf 'dlcount-install: error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --deb) deb=${2:?--deb needs a dlcount_*.deb file}; shift 2 ;;
        --root) root=${2:?--root needs a directory}; shift 2 ;;
        --site) site=1; shift ;;
        --nginx) nginx=1; shift ;;
        --server-name) server_name=${2:?--server-name needs a host name}; shift 2 ;;
        --site-title) site_title=${2:?--site-title needs a text}; shift 2 ;;
        --allow) allow+=("${2:?--allow needs an address or CIDR}"); shift 2 ;;
        --import-logs) import_logs=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        --force-conf) force_conf=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage 0 ;;
        *) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
    esac
done

# run CMD...: every change to the system goes through here, so --dry-run
# shows exactly what a real run would do.
run() {
    if [ "$dry_run" = 1 ]; then
        printf '+ %s\n' "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}

[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || die "--purge only goes with --uninstall"
[ -z "$deb" ] || [ -z "$binary" ] || die "--deb and --binary exclude each other"
[ -z "$deb" ] || [ "$uninstall" = 0 ] || die "--deb only goes with an install"
if [ -n "$deb" ]; then
    [ -f "$deb" ] || die "no such package file: $deb"
    deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
fi
[ -z "$server_name" ] || [ "$site" = 1 ] || die "--server-name only goes with --site"
case $server_name in
    *[!A-Za-z0-9.-]*) die "--server-name takes a host name (letters, digits, dots, dashes), not: $server_name" ;;
esac
if [ "$(id -u)" -ne 0 ] && [ "$dry_run" = 0 ]; then
    die "run as root (or add --dry-run to see what it would do)"
fi
[ "$nginx" = 0 ] || [ "$uninstall" = 0 ] || die "--nginx goes with an install (--uninstall takes back whatever was installed)"
# Apache's tools: for an Apache install, and to undo one (an nginx-only
# server has none, and nothing of Apache's to undo).
if [ "$nginx" = 0 ] && { [ "$uninstall" = 0 ] || command -v apache2ctl >/dev/null 2>&1; }; then
    for tool in apache2ctl a2enconf a2disconf a2enmod a2dismod a2ensite a2dissite; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found: install Apache first (apt-get install apache2)"
    done
fi
# The last step fetches the page over HTTP to prove it is served.
if [ "$uninstall" = 0 ]; then
    command -v curl >/dev/null 2>&1 || die "curl not found: apt-get install curl (it checks that the pages are served)"
fi

TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT

# toml_root prints `root` from an existing dlcount.toml (a plain
# root = "..." line, as this script writes it).
toml_root() {
    sed -n 's/^[[:space:]]*root[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$TOML" 2>/dev/null | head -n 1
}
# toml_db prints `db` from dlcount.toml, or the program's default.
toml_db() {
    local db
    db=$(sed -n 's/^[[:space:]]*db[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$TOML" 2>/dev/null | head -n 1)
    printf '%s\n' "${db:-$STATE_DIR/dlcount.sqlite}"
}

# toml_string TEXT prints TEXT as a TOML basic string (TEXT holds no
# control characters: checked with the options).
toml_string() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

# The Debian package (scripts/build-deb.sh). package_state prints dpkg's
# status of dlcount: "install ok installed", "deinstall ok config-files"
# (removed, conffiles kept), or nothing.
package_state() { dpkg-query -W -f '${Status}' dlcount 2>/dev/null || true; }
# pristine_conffile PATH: PATH is a conffile of the package that nobody has
# edited (its md5sum is the one dpkg recorded), so it may be adapted here
# without a .new beside it.
pristine_conffile() {
    local want
    want=$(dpkg-query -W -f '${Conffiles}\n' dlcount 2>/dev/null | awk -v f="$1" '$1 == f { print $2 }')
    [ -n "$want" ] && [ -f "$1" ] && [ "$(md5sum <"$1" | cut -d' ' -f1)" = "$want" ]
}
package=0
if [ -n "$deb" ]; then
    package=1
elif [ -z "$binary" ] && [ "$uninstall" = 0 ] && [ "$(package_state)" = "install ok installed" ]; then
    package=1
elif [ "$uninstall" = 1 ] && [ -n "$(package_state)" ]; then
    package=1
fi
[ "$package" = 0 ] || BIN_DEST=/usr/bin/dlcount-pipe

apache_running() {
    if [ -d /run/systemd/system ]; then
        systemctl is-active --quiet apache2
    else
        # apache2ctl reads the PidFile location from /etc/apache2/envvars.
        local pidfile
        pidfile=$(sh -c '. /etc/apache2/envvars && printf %s "$APACHE_PID_FILE"')
        [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
    fi
}

# reload_apache: a graceful reload, only if Apache runs (it reads the new
# configuration when it starts anyway). Graceful: downloads in flight finish,
# and their lines still reach the old logger.
reload_apache() {
    if ! apache_running; then
        say "Apache is not running; the configuration applies when it starts"
    elif [ -d /run/systemd/system ]; then
        run systemctl reload apache2
    else
        run apache2ctl graceful
    fi
}

# --- what this script changed in Apache (see the header) ------------------
# enabled KIND NAME: is module/conf/site NAME enabled right now?
enabled() {
    case $1 in
        mod) [ -e "/etc/apache2/mods-enabled/$2.load" ] ;;
        conf) [ -e "/etc/apache2/conf-enabled/$2.conf" ] ;;
        site) [ -e "/etc/apache2/sites-enabled/$2.conf" ] ;;
    esac
}
recorded() { [ -f "$CHANGES" ] && grep -qxF "$1" "$CHANGES"; }
record() {
    recorded "$1" && return 0
    if [ "$dry_run" = 1 ]; then
        printf '+ echo %q >> %q\n' "$1" "$CHANGES"
    else
        printf '%s\n' "$1" >>"$CHANGES"
    fi
}
unrecord() {
    recorded "$1" || return 0
    if [ "$dry_run" = 1 ]; then
        printf '+ sed -i %q %q\n' "/^$1\$/d" "$CHANGES"
    else
        grep -vxF "$1" "$CHANGES" >"$TMPD/changes" || true
        cat "$TMPD/changes" >"$CHANGES"
    fi
}
# Apache's a2enmod & co. leave state markers, files named NAME in
# /var/lib/apache2/{module,conf,site}/{enabled,disabled}_by_{admin,maint}/
# (what Debian's package scripts read to respect an admin's choice); each
# call deletes every marker named NAME and writes its own. The first time
# this script runs one for NAME, the markers NAME had are noted in
# /etc/dlcount/apache-markers ("name NAME", then "had PATH" per marker), and
# --purge puts exactly those back, so no "disabled_by_admin" of the
# installer's outlives it.
note_markers() {
    local name=$1 m
    [ -f "$MARKERS" ] && grep -qxF "name $name" "$MARKERS" && return 0
    {
        printf 'name %s\n' "$name"
        find "$A2_STATE" -mindepth 3 -maxdepth 3 -type f -name "$name" 2>/dev/null | sort | while IFS= read -r m; do
            printf 'had %s\n' "$m"
        done
    } >"$TMPD/markers"
    if [ "$dry_run" = 1 ]; then
        sed "s|^|+ note in $MARKERS: |" "$TMPD/markers"
    else
        install -d -m 0755 "$ETC_DIR"
        cat "$TMPD/markers" >>"$MARKERS"
    fi
}
# run_a2 COMMAND NAME: a2enmod, a2dissite, ... -q NAME, its markers noted first.
run_a2() {
    note_markers "$2"
    run "$1" -q "$2"
}
# restore_markers: the markers of every NAME this script touched, as they
# were before its first a2* call for it.
restore_markers() {
    local kind arg m
    [ -f "$MARKERS" ] || return 0
    while read -r kind arg; do
        case $kind in
            name)
                while IFS= read -r m; do
                    run rm -f "$m"
                done < <(find "$A2_STATE" -mindepth 3 -maxdepth 3 -type f -name "$arg" 2>/dev/null)
                ;;
        esac
    done <"$MARKERS"
    while read -r kind arg; do
        # The package's conf keeps the state its maintainer scripts give it
        # (apt-get purge clears it); a2ensite dlcount, for the site of the
        # same name, had deleted it: markers are per name, not per kind.
        if [ "$package" = 1 ] && [ "${arg#"$A2_STATE"/conf/*/}" = "$CONF_NAME" ]; then
            continue
        fi
        case $kind in
            had) run install -d -m 0755 "${arg%/*}"; run touch "$arg" ;;
        esac
    done <"$MARKERS"
}

# a2 VERB NAME: a2enmod/a2enconf/a2ensite NAME (VERB enmod, enconf, ensite)
# or a2dissite NAME (VERB dissite), only if needed, and the record of it:
# a change is recorded only when this script made it. What this run changed
# is also in run_changes, for a failed configtest to take back.
run_changes=()
a2() {
    local verb=$1 name=$2 kind=${1#en}
    kind=${kind#dis}
    case $verb in
        en*) ! enabled "$kind" "$name" || return 0 ;;
        dis*) enabled "$kind" "$name" || return 0 ;;
    esac
    run_a2 "a2$verb" "$name"
    record "$verb $name"
    run_changes+=("$verb $name")
}
# undo LINE...: reverses the given changes ("enmod headers" ...), last first,
# and forgets them.
undo() {
    local i verb name
    for ((i = $# ; i >= 1; i--)); do
        verb=${!i%% *}
        name=${!i#* }
        case $verb in
            enmod) if enabled mod "$name"; then run_a2 a2dismod "$name"; fi ;;
            enconf) if enabled conf "$name"; then run_a2 a2disconf "$name"; fi ;;
            ensite) if enabled site "$name"; then run_a2 a2dissite "$name"; fi ;;
            dissite)
                if ! enabled site "$name" && [ -e "/etc/apache2/sites-available/$name.conf" ]; then
                    run_a2 a2ensite "$name"
                fi
                ;;
        esac
        unrecord "${!i}"
    done
}
# undo_changes: undo of everything recorded.
undo_changes() {
    local lines=()
    [ -f "$CHANGES" ] || return 0
    mapfile -t lines <"$CHANGES"
    [ "${#lines[@]}" -eq 0 ] || undo "${lines[@]}"
}

# default_site_file: the config file of the site that answers requests for
# unknown names on port 80 ("default server" in apache2ctl -S), if any.
default_site_file() {
    apache2ctl -S 2>/dev/null | awk '
        /^\*:80 / || /^[^ ]*:80 / {
            if ($2 == "is" ) { want = 1; next }
            if (match($0, /\(([^:()]+):[0-9]+\)/)) { f = substr($0, RSTART + 1, RLENGTH - 1); sub(/:[0-9]+\)$/, "", f); print f; exit }
        }
        want && /default server/ { if (match($0, /\(([^:()]+):[0-9]+\)/)) { f = substr($0, RSTART + 1, RLENGTH - 1); sub(/:[0-9]+\)$/, "", f); print f; exit } }
    '
}

# other_sites: the enabled sites other than ours, one name per line.
other_sites() {
    local f n
    for f in /etc/apache2/sites-enabled/*.conf; do
        [ -e "$f" ] || continue
        n=${f##*/}
        n=${n%.conf}
        [ "$n" = "$SITE_NAME" ] || printf '%s\n' "$n"
    done
}

# site_docroot NAME: the DocumentRoot line of sites-available/NAME.conf.
site_docroot() {
    sed -n 's/^[[:space:]]*DocumentRoot[[:space:]]\{1,\}"\{0,1\}\([^"[:space:]]*\)"\{0,1\}.*/\1/p' \
        "/etc/apache2/sites-available/$1.conf" 2>/dev/null | head -n 1
}

# take_over_saved_index: STATE_DIR/index.html.pre-dlcount (where 0.1.0
# saved it, a directory of dlcount's) moves to SAVE_DIR only while it is
# what this script left there: a plain file of someone other than dlcount,
# with one name. It is read as data (O_NOFOLLOW, O_NONBLOCK: no link
# followed, no FIFO waited on) and kept only if it is still that same file
# afterwards; anything else is dropped with a warning. (The same function is
# in scripts/debian/postinst.)
take_over_saved_index() {
    local old=$STATE_DIR/index.html.pre-dlcount before ftype owner nlink mode ids mtime tmp
    [ -e "$old" ] || [ -L "$old" ] || return 0
    if [ "$dry_run" = 1 ]; then
        printf '+ take over %q as %q (a plain file only), rm -f %q\n' "$old" "$SAVED_INDEX" "$old"
        return 0
    fi
    before=$(stat -c '%F|%U|%h|%d:%i|%a|%u:%g|%Y' -- "$old" 2>/dev/null || true)
    IFS='|' read -r ftype owner nlink _ mode ids mtime <<<"$before"
    case $ftype in "regular file" | "regular empty file") ;; *) before="" ;; esac
    if [ "$owner" = "$USER_NAME" ] || [ "$nlink" != 1 ]; then before=""; fi
    if [ -z "$before" ]; then
        say "warning: $old is not the plain file this script saved there; dropped"
    elif [ -e "$SAVED_INDEX" ] || [ -L "$SAVED_INDEX" ]; then
        : # root's own copy is there already
    else
        install -d -o root -g root -m 0700 "$SAVE_DIR"
        tmp=$(mktemp "$SAVED_INDEX.XXXXXX")
        if dd if="$old" of="$tmp" iflag=nofollow,nonblock status=none 2>/dev/null \
            && [ "$(stat -c '%F|%U|%h|%d:%i|%a|%u:%g|%Y' -- "$old" 2>/dev/null)" = "$before" ]; then
            chown "$ids" "$tmp"
            chmod "$mode" "$tmp"
            touch -d "@$mtime" "$tmp"
            mv -f -T "$tmp" "$SAVED_INDEX"
        else
            rm -f "$tmp"
            say "warning: $old changed while it was read; dropped"
        fi
    fi
    rm -f "$old"
}
# private_copy_dir: a new directory of root's under /var/lib for copies
# dlcount must read (0711: it may open the files it owns in it, and can
# neither rename the directory nor put anything in it).
private_copy_dir() {
    local d
    d=$(mktemp -d "$STATE_DIR-$1.XXXXXX")
    chmod 0711 "$d"
    printf '%s\n' "$d"
}

# shellcheck source=scripts/nginx/install-steps.sh
. "$HERE/nginx/install-steps.sh"

take_over_saved_index

# ------------------------------------------------------------------ uninstall
if [ "$uninstall" = 1 ]; then
    root=$(toml_root)
    root=${root:-$DEFAULT_ROOT}
    # 1. The private statistics become unreachable first, while the access
    #    rule is still in force: the pages go, and dlcount may no longer
    #    create anything in the root, so a logger that is still finishing
    #    the lines of a long download cannot write them back.
    if [ -d "$root" ]; then
        # A link dlcount put in place of .stats goes as a link (rm never
        # follows its operand).
        if [ -L "$root/.stats" ]; then
            run rm -f "$root/.stats"
        elif [ -d "$root/.stats" ]; then
            run rm -rf "$root/.stats"
        fi
        if [ "$(stat -c %G "$root")" = "$USER_NAME" ] && [ -n "$(find "$root" -maxdepth 0 -perm -g+w)" ]; then
            run chmod g-w "$root"
        fi
    fi
    # nginx first, if --nginx installed it: it stops sending, then the
    # listener stops (scripts/nginx/install-steps.sh).
    nginx_uninstall
    # 2. Apache as it was before the install: what this script enabled
    #    goes, what it disabled comes back (see the header). Modules first
    #    kept if someone else's configuration now needs them.
    #    With the package, its prerm disables the conf (and reloads Apache)
    #    before dpkg removes the binary.
    if [ "$package" = 1 ] && [ "$(package_state)" = "install ok installed" ]; then
        run env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q dlcount
    fi
    if command -v apache2ctl >/dev/null 2>&1; then
        conf_was_on=0
        enabled conf "$CONF_NAME" && conf_was_on=1
        site_was_on=0
        enabled site "$SITE_NAME" && site_was_on=1
        # Those two are ours whatever the record says.
        if [ "$conf_was_on" = 1 ]; then run_a2 a2disconf "$CONF_NAME"; fi
        if [ "$site_was_on" = 1 ]; then run_a2 a2dissite "$SITE_NAME"; fi
        mods_undone=()
        if [ -f "$CHANGES" ]; then
            mapfile -t mods_undone < <(sed -n 's/^enmod //p' "$CHANGES")
        fi
        undo_changes
        if [ "$dry_run" = 1 ]; then
            reload_apache
        elif apache2ctl configtest >/dev/null 2>&1; then
            reload_apache
        else
            # Something of the admin's may use a module we enabled (Header in a
            # site of theirs): keep the modules, then test again.
            for m in "${mods_undone[@]}"; do
                enabled mod "$m" || run_a2 a2enmod "$m"
                say "kept module $m enabled: apache2ctl configtest fails without it"
            done
            if apache2ctl configtest >/dev/null 2>&1; then
                reload_apache
            else
                say "apache2ctl configtest fails even without dlcount; not reloading (fix it, then reload)"
            fi
        fi
    fi
    # The old loggers exit on their own once Apache closes their pipes.
    # (.dlcount-pipe.new.PID: the temporary copy of an install that was
    # interrupted before its rename.)
    # (The package's conffile stays until purge, as dpkg keeps it.)
    for f in "$CONF_DEST" "$CONF_DEST.new" "$CONF_DEST.bak" "$SITE_DEST" "$BIN_DEST" \
        "$(dirname "$BIN_DEST")"/.dlcount-pipe.new.*; do
        [ "$package" = 0 ] || [ "$f" != "$CONF_DEST" ] || continue
        if [ -e "$f" ]; then run rm -f "$f"; fi
    done
    if [ "$purge" = 1 ]; then
        if [ -d "$root" ]; then
            # The generated public page, or a link dlcount put in its place
            # (stat does not follow links), and any temporary page file a
            # killed renderer left; the index.html that was there before
            # comes back under a fresh name of root's (mktemp, in the sticky
            # root: nobody else may rename or delete it), renamed into place.
            if { [ -e "$root/index.html" ] || [ -L "$root/index.html" ]; } \
                && [ "$(stat -c %U "$root/index.html")" = "$USER_NAME" ]; then
                run rm -f "$root/index.html"
            fi
            while IFS= read -r -d '' f; do
                run rm -f "$f"
            done < <(find "$root" -maxdepth 1 -name '.dlcount-*' -user "$USER_NAME" -print0 2>/dev/null)
            if [ -f "$SAVED_INDEX" ] && [ ! -L "$SAVED_INDEX" ] \
                && [ ! -e "$root/index.html" ] && [ ! -L "$root/index.html" ]; then
                if [ "$dry_run" = 1 ]; then
                    printf '+ cp -p %q ROOT/.dlcount-restore.XXXXXX, mv -T it to %q\n' "$SAVED_INDEX" "$root/index.html"
                else
                    tmp=$(mktemp "$root/.dlcount-restore.XXXXXX")
                    cp -p "$SAVED_INDEX" "$tmp" && mv -f -T "$tmp" "$root/index.html" \
                        || { rm -f "$tmp"; die "could not put back $root/index.html from $SAVED_INDEX"; }
                fi
                say "put back the index.html that was in $root before dlcount"
            fi
            if [ "$(stat -c %G "$root")" = "$USER_NAME" ]; then
                run chgrp root "$root"
                run chmod g-w,-t "$root"
            fi
        fi
        restore_markers
        # The package's postrm removes the counts, the conffiles and the user.
        if [ "$package" = 1 ]; then
            run env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q dlcount
        fi
        if [ -d "$STATE_DIR" ]; then run rm -rf "$STATE_DIR"; fi
        if [ -d "$SAVE_DIR" ]; then run rm -rf "$SAVE_DIR"; fi
        # Copies an interrupted run left (private_copy_dir).
        for d in "$STATE_DIR"-init.* "$STATE_DIR"-import.*; do
            if [ -d "$d" ] && [ ! -L "$d" ]; then run rm -rf "$d"; fi
        done
        if [ -d "$ETC_DIR" ]; then run rm -rf "$ETC_DIR"; fi
        if getent passwd "$USER_NAME" >/dev/null; then
            # deluser first removes the user's crontab, and where cron is not
            # installed warns that it cannot; dlcount never had one, so then
            # userdel (deluser's own last step) does it without the noise.
            if command -v deluser >/dev/null 2>&1 && command -v crontab >/dev/null 2>&1; then
                run deluser --quiet --system "$USER_NAME"
            else
                run userdel "$USER_NAME"
            fi
        fi
        # userdel removes the user's own group (USERGROUPS_ENAB); not always.
        if getent group "$USER_NAME" >/dev/null; then run groupdel "$USER_NAME"; fi
        say "dlcount removed, counts and pages purged"
    else
        say "dlcount removed, and $root/.stats with it; kept $STATE_DIR (the counts), $ETC_DIR and $root/index.html (--purge removes them)"
    fi
    exit 0
fi

# -------------------------------------------------------------------- install
# Which root: --root, else the existing config's, else the default. An
# existing dlcount.toml is never rewritten, so a different --root would make
# Apache and the logger disagree: refuse.
existing_root=""
# The package's own dlcount.toml, unedited, is an example, not a choice.
if [ -f "$TOML" ] && ! { [ "$package" = 1 ] && pristine_conffile "$TOML"; }; then
    existing_root=$(toml_root)
fi
if [ -n "$root" ]; then
    case $root in /*) ;; *) die "--root must be an absolute path" ;; esac
    root=${root%/}
    if [ -n "$existing_root" ] && [ "$existing_root" != "$root" ]; then
        die "$TOML says root = \"$existing_root\"; edit it (or remove it) to change the root"
    fi
else
    root=${existing_root:-$DEFAULT_ROOT}
fi
case $root in *[!A-Za-z0-9._/+@-]*) die "unusual characters in the root path: $root" ;; esac
case $site_title in *[[:cntrl:]]*) die "control characters are not allowed in --site-title" ;; esac
for cidr in "${allow[@]}"; do
    case $cidr in
        *[!0-9A-Fa-f:./]* | "") die "--allow takes an IP address or CIDR, not: $cidr" ;;
    esac
done

# Preflight, before anything changes.
# The toolchain, when this script is to build.
if [ -z "$binary" ] && [ "$package" = 0 ]; then
    problem=$(toolchain_problem "$REPO") || die "$problem, or build elsewhere and pass --binary PATH"
fi
# The download root's group.
if [ -d "$root" ]; then
    root_group=$(stat -c %G "$root")
    case $root_group in
        root | "$USER_NAME") ;;
        *) die "$root belongs to group $root_group. dlcount must create files in it (index.html).
  Either: chgrp $USER_NAME $root   (then run this again),
  or keep the group and let dlcount in: adduser $USER_NAME $root_group && chmod g+w,+t $root" ;;
    esac
fi
# --site: which sites it may take over (see "Serving the root").
disable_stock=0
if [ "$nginx" = 1 ]; then
    nginx_preflight
elif [ "$site" = 1 ] && [ -z "$server_name" ]; then
    mapfile -t others < <(other_sites)
    if [ "${#others[@]}" -eq 0 ]; then
        :
    elif [ "${#others[@]}" -eq 1 ] && [ "$(site_docroot "${others[0]}")" = "$root" ]; then
        say "note: --site not needed, the site ${others[0]} serves $root already; left as it is"
        site=0
    elif [ "${#others[@]}" -eq 1 ] && [ "${others[0]}" = "$STOCK_SITE" ] \
        && [ "$(site_docroot "$STOCK_SITE")" = "$STOCK_DOCROOT" ] && [ "$root" != "$STOCK_DOCROOT" ]; then
        disable_stock=1
    else
        die "--site without --server-name makes dlcount the default site, but these sites are enabled: ${others[*]}.
  Either give the download site a name of its own: add --server-name downloads.example.org,
  or serve $root from your site (DocumentRoot $root, or Alias) and run this again without --site."
    fi
fi

# 1. The binary: the package's, or built, or given.
if [ "$package" = 1 ]; then
    if [ -n "$deb" ]; then
        say "installing the package $deb"
        # confold: on an upgrade, the conffiles this script adapted stay (the
        # conf is compared with this version's below, as without the package).
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$deb"
    else
        say "using the installed package dlcount ($BIN_DEST)"
    fi
    if [ "$dry_run" = 0 ]; then
        "$BIN_DEST" --help >/dev/null 2>&1 || die "$BIN_DEST --help failed after installing the package"
    fi
else
    if [ -z "$binary" ]; then
        say "building (cargo build --release)"
        run cargo build --release --manifest-path "$REPO/Cargo.toml"
        binary=$REPO/target/release/dlcount-pipe
    fi
    if [ "$dry_run" = 0 ] || [ -e "$binary" ]; then
        [ -x "$binary" ] || die "not an executable: $binary"
        # A binary for the wrong architecture or with missing libraries must fail
        # here, not in Apache's error log on every respawn.
        "$binary" --help >/dev/null 2>&1 || die "$binary --help failed: is it a dlcount-pipe for this machine?"
    fi
    if [ -e "$BIN_DEST" ] && cmp -s "$binary" "$BIN_DEST"; then
        say "$BIN_DEST is up to date"
    else
        # Same directory, so the final mv is a rename(2): Apache sees either the
        # old or the new file, never none and never half of one.
        tmp_bin=$(dirname "$BIN_DEST")/.dlcount-pipe.new.$$
        run install -m 0755 -o root -g root "$binary" "$tmp_bin"
        run mv -f "$tmp_bin" "$BIN_DEST"
        say "installed $BIN_DEST"
    fi
fi

# 2. The user and its state directory. No home, no shell: it only owns files.
if ! getent passwd "$USER_NAME" >/dev/null; then
    if command -v adduser >/dev/null 2>&1; then
        run adduser --quiet --system --group --no-create-home --home "$STATE_DIR" \
            --gecos "dlcount download counter" "$USER_NAME"
    else
        run useradd --system --user-group --no-create-home --home-dir "$STATE_DIR" \
            --shell /usr/sbin/nologin "$USER_NAME"
    fi
fi
# 0750: the database holds no raw addresses, but per-day tallies are nobody
# else's business.
run install -d -o "$USER_NAME" -g "$USER_NAME" -m 0750 "$STATE_DIR"

# 3. The logger's configuration, only if absent (it is yours to edit), or
#    the package's example, as long as nobody has edited it.
run install -d -o root -g root -m 0755 "$ETC_DIR"
if [ -f "$TOML" ] && ! { [ "$package" = 1 ] && pristine_conffile "$TOML"; }; then
    say "$TOML exists, kept as it is"
    [ -z "$site_title" ] || say "note: --site-title ignored, edit site_title in $TOML"
else
    {
        fmt_expr=""
        [ "$nginx" = 0 ] || fmt_expr='s/^format = .*/format = "nginx_dlcount"/'
        sed -e "s#^root = .*#root = $(toml_string "$root")#" -e "$fmt_expr" "$REPO/apache-conf/dlcount.toml" \
            | if [ -n "$site_title" ]; then
                # Through awk, not sed: the title may hold any character.
                TITLE=$(toml_string "$site_title") awk '/^site_title = / { print "site_title = " ENVIRON["TITLE"]; next } { print }'
            else
                # No title given: leave the example commented out, the
                # program's default applies.
                sed -e 's/^site_title = /#site_title = /'
            fi
    } >"$TMPD/dlcount.toml"
    run install -o root -g root -m 0644 "$TMPD/dlcount.toml" "$TOML"
    say "wrote $TOML"
fi

# 4. The download root (see the header for why group + sticky bit).
if [ ! -d "$root" ]; then
    run install -d -o root -g root -m 0755 "$root"
fi
run chgrp "$USER_NAME" "$root"
run chmod g+w,+t,o-w "$root"
# ROOT/.stats, dlcount's: a link there (dlcount's doing) goes; a missing one
# is made by root (mkdir: no link followed; root's in the sticky root, so
# nobody else can swap it) and then given away with chown -h. One dlcount
# owns already is left to it: it could swap it for a link at any moment.
if [ -L "$root/.stats" ]; then run rm -f "$root/.stats"; fi
if [ ! -e "$root/.stats" ] && [ ! -L "$root/.stats" ]; then
    run mkdir -m 0755 "$root/.stats"
    run chown -h "$USER_NAME:$USER_NAME" "$root/.stats"
elif [ -d "$root/.stats" ] && [ ! -L "$root/.stats" ] && [ "$(stat -c %U "$root/.stats")" != "$USER_NAME" ]; then
    run chmod 0755 "$root/.stats"
    run chown -h "$USER_NAME:$USER_NAME" "$root/.stats"
fi
if [ -f "$root/index.html" ] && [ ! -L "$root/index.html" ] && [ "$(stat -c %U "$root/index.html")" != "$USER_NAME" ]; then
    if [ ! -e "$SAVED_INDEX" ]; then
        run install -d -o root -g root -m 0700 "$SAVE_DIR"
        run cp -p "$root/index.html" "$SAVED_INDEX"
    fi
    run chown -h "$USER_NAME:$USER_NAME" "$root/index.html"
    say "the old $root/index.html is saved as $SAVED_INDEX"
fi

# The logger's own verdict on everything it will need (config file, format,
# database and root as its user, templates), before Apache starts it: a bad
# configuration found here costs nothing; found by Apache it would make the
# logger discard every line until fixed.
if [ "$dry_run" = 1 ]; then
    printf '+ %s check --config %s\n' "$BIN_DEST" "$TOML"
elif "$BIN_DEST" check --help >/dev/null 2>&1; then
    if ! check_out=$("$BIN_DEST" check --config "$TOML" 2>&1); then
        printf '%s\n' "$check_out" >&2
        die "$BIN_DEST check --config $TOML failed (above); Apache not touched: fix $TOML, then run this again"
    fi
    say "checked $TOML: ${check_out##*$'\n'}"
else
    say "note: this $BIN_DEST has no check subcommand; configuration not checked"
fi

# The database and the pages exist before Apache starts a logger: a logger
# that is creating the database while `import` or `render` opens it makes
# them fail ("not a dlcount database (no schema)"). Importing an empty file
# as dlcount creates it (nothing is counted); rendering then puts the pages
# in place, so the root answers at once.
if [ ! -e "$(toml_db)" ]; then
    if [ "$dry_run" = 1 ]; then
        printf '+ runuser -u %s -- %s import --config %s EMPTY-FILE\n' "$USER_NAME" "$BIN_DEST" "$TOML"
    else
        empty=$(private_copy_dir init)
        install -o "$USER_NAME" -g "$USER_NAME" -m 0600 /dev/null "$empty/empty.log"
        # Its summary ("0 lines") says nothing about the logs: shown only if it fails.
        if ! out=$(runuser -u "$USER_NAME" -- "$BIN_DEST" import --config "$TOML" "$empty/empty.log" 2>&1); then
            printf '%s\n' "$out" >&2
            rm -rf "$empty"
            die "could not create the database $(toml_db) as $USER_NAME (see above)"
        fi
        rm -rf "$empty"
        say "created the database $(toml_db)"
    fi
fi
run runuser -u "$USER_NAME" -- "$BIN_DEST" render --config "$TOML"

# 5.-7. for nginx (scripts/nginx/install-steps.sh).
if [ "$nginx" = 1 ]; then
    nginx_install
    [ "$import_logs" = 0 ] || nginx_import_logs
    nginx_rc=0
    nginx_probe || nginx_rc=$?
    exit "$nginx_rc"
fi

# 5. Apache.
{
    # The shipped conf with this site's root and admin networks filled in.
    allow_line=""
    [ "${#allow[@]}" -eq 0 ] || allow_line="        Require ip ${allow[*]}"
    ALLOW_LINE=$allow_line awk -v root="$root" -v bin="$BIN_DEST" '
        { gsub("/var/www/file-server", root); gsub("/usr/local/bin/dlcount-pipe", bin) }
        { print }
        /\(install\.sh --allow CIDR adds them here\)\./ && ENVIRON["ALLOW_LINE"] != "" { print ENVIRON["ALLOW_LINE"] }
    ' "$REPO/apache-conf/dlcount.conf"
} >"$TMPD/dlcount.conf"
if [ ! -e "$CONF_DEST" ]; then
    run install -o root -g root -m 0644 "$TMPD/dlcount.conf" "$CONF_DEST"
elif cmp -s "$TMPD/dlcount.conf" "$CONF_DEST"; then
    say "$CONF_DEST is up to date"
elif [ "$package" = 1 ] && pristine_conffile "$CONF_DEST"; then
    run install -o root -g root -m 0644 "$TMPD/dlcount.conf" "$CONF_DEST"
    say "adapted the package's $CONF_DEST (root, --allow)"
elif [ "$force_conf" = 1 ]; then
    run cp -p "$CONF_DEST" "$CONF_DEST.bak"
    run install -o root -g root -m 0644 "$TMPD/dlcount.conf" "$CONF_DEST"
    say "replaced $CONF_DEST (previous one in $CONF_DEST.bak)"
else
    run install -o root -g root -m 0644 "$TMPD/dlcount.conf" "$CONF_DEST.new"
    say "$CONF_DEST differs from this version, kept; the new one is $CONF_DEST.new (--force-conf to replace)"
fi
if [ "$site" = 1 ]; then
    awk -v root="$root" -v name="$server_name" '
        { gsub("/var/www/file-server", root) }
        name != "" && /^[[:space:]]*#ServerName / { sub(/#ServerName .*/, "ServerName " name) }
        { print }
    ' "$REPO/apache-conf/dlcount-site.conf" >"$TMPD/dlcount-site.conf"
    if [ -e "$SITE_DEST" ] && cmp -s "$TMPD/dlcount-site.conf" "$SITE_DEST"; then
        say "$SITE_DEST is up to date"
    else
        run install -o root -g root -m 0644 "$TMPD/dlcount-site.conf" "$SITE_DEST"
    fi
fi
was_enabled=0
enabled conf "$CONF_NAME" && was_enabled=1
# headers: the cache headers of the pages (the conf works without it).
a2 enmod headers
a2 enconf "$CONF_NAME"
if [ "$site" = 1 ]; then
    [ "$disable_stock" = 0 ] || a2 dissite "$STOCK_SITE"
    a2 ensite "$SITE_NAME"
fi
if [ "$dry_run" = 1 ]; then
    printf '+ apache2ctl configtest\n'
elif ! out=$(apache2ctl configtest 2>&1); then
    # Leave Apache as it was: a broken configuration would stop the next
    # restart (logrotate does one every night). Undo what this run did.
    [ "${#run_changes[@]}" -eq 0 ] || undo "${run_changes[@]}"
    printf '%s\n' "$out" >&2
    if [ "$was_enabled" = 1 ]; then
        die "apache2ctl configtest failed (dlcount.conf was already enabled before this run and stays so: fix the error above, then reload)"
    fi
    die "apache2ctl configtest failed; dlcount.conf disabled again, Apache not reloaded"
fi
reload_apache

# 6. History: the rotated logs (plain and .gz), oldest first; the order does
# not change the counts, which are deduplicated, also against what the live
# logger is counting at the same time.
if [ "$import_logs" = 1 ]; then
    mapfile -t logs < <(find "$LOG_GLOB_DIR" -maxdepth 1 -name 'access.log*' -type f | sort -t. -k3,3rn)
    if [ "${#logs[@]}" -eq 0 ]; then
        say "no $LOG_GLOB_DIR/access.log* to import"
    else
        # The logs are root:adm 0640 and the import runs as dlcount, so that
        # the database is only ever written by dlcount (a root-owned -wal or
        # -shm file would lock the running logger out). Root copies them,
        # names unchanged, as dlcount's own files in a directory of root's
        # (private_copy_dir: in one of dlcount's, dlcount could swap it for
        # a link while root copies into it); a pipe would not do:
        # /dev/stdin is a root-owned pipe the dlcount process may not open.
        if [ "$dry_run" = 1 ]; then
            import_dir=$STATE_DIR-import.XXXXXX
            printf '+ mktemp -d %q; chmod 0711 it\n' "$import_dir"
        else
            import_dir=$(private_copy_dir import)
        fi
        copies=()
        for f in "${logs[@]}"; do
            run install -o "$USER_NAME" -g "$USER_NAME" -m 0600 "$f" "$import_dir/${f##*/}"
            copies+=("$import_dir/${f##*/}")
        done
        say "importing ${#logs[@]} log files"
        import_rc=0
        run runuser -u "$USER_NAME" -- "$BIN_DEST" import --config "$TOML" "${copies[@]}" || import_rc=$?
        run rm -rf "$import_dir"
        [ "$import_rc" = 0 ] || die "import of ${logs[*]} failed (exit $import_rc); run it again once fixed, it never counts twice"
    fi
    # The pages with the imported history.
    run runuser -u "$USER_NAME" -- "$BIN_DEST" render --config "$TOML"
fi

# 7. Is the root served, and where? A probe file with a random name and
#    content, fetched back over HTTP: only a site whose DocumentRoot is the
#    root can return it. Then the page itself must answer 200.
host=${server_name:-localhost}
url=http://$host/
stats_from="this host${allow[*]:+ or ${allow[*]}}"
if [ "$dry_run" = 1 ]; then
    printf '+ curl %s (the root must be served there)\n' "$url"
    say "dry run: would end with $url"
    exit 0
fi
curl_to() { # curl_to URL: status code of a GET of URL, at this host
    curl -sS -o "$TMPD/body" -w '%{http_code}' --max-time 10 \
        --resolve "$host:80:127.0.0.1" "$1" 2>/dev/null || true
}
what_to_do() {
    local dflt docroot
    dflt=$(default_site_file)
    docroot=""
    [ -z "$dflt" ] || docroot=$(sed -n 's/^[[:space:]]*DocumentRoot[[:space:]]\{1,\}"\{0,1\}\([^"[:space:]]*\)"\{0,1\}.*/\1/p' "$dflt" | head -n 1)
    say "Apache does not serve $root at $url${dflt:+ (it is served by ${dflt##*/}${docroot:+, DocumentRoot $docroot})}."
    if [ "$site" = 1 ]; then
        say "Check 'apache2ctl -S': the site $SITE_NAME must answer for $host on port 80."
    elif [ "$(other_sites)" = "$STOCK_SITE" ]; then
        say "To serve it, run this again with --site: it adds a site for $root and disables Debian's 000-default (which serves $STOCK_DOCROOT);"
        say "or with --site --server-name NAME for a site under that name only; or set DocumentRoot $root in your site and reload Apache."
    else
        say "To serve it, set DocumentRoot $root (or an Alias to it) in the site that answers $url and reload Apache,"
        say "or run this again with --site --server-name NAME for a site of its own under that name."
    fi
}
if ! apache_running; then
    say "Apache is not running: start it (systemctl start apache2), then open $url"
    exit 3
fi
# A fresh name of root's (mktemp: O_EXCL, so never a link dlcount planted
# at a guessed name), which nobody else may rename in the sticky root.
probe_path=$(mktemp --suffix=.txt "$root/dlcount-probe-XXXXXXXXXX")
probe=${probe_path##*/}
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$token" >"$probe_path"
chmod 0644 "$probe_path"
served=no
# A reload is graceful: give Apache a few seconds to take the new config.
for _ in $(seq 1 20); do
    if [ "$(curl_to "$url$probe")" = 200 ] && [ "$(cat "$TMPD/body")" = "$token" ]; then
        served=yes
        break
    fi
    sleep 0.5
done
rm -f "$probe_path"
if [ "$served" = no ]; then
    what_to_do
    exit 3
fi
code=$(curl_to "$url")
if [ "$code" != 200 ]; then
    say "$url answers $code, not 200: see /var/log/apache2/error.log (is $root/index.html there? dlcount-pipe render --config $TOML writes it)"
    exit 3
fi
stats_code=$(curl_to "${url}.stats/")
say "statistics: ${url}.stats/ (from $stats_from; from here: $stats_code)"
[ -z "$server_name" ] || say "(checked at this host: $host must resolve to this server for visitors)"
say "done. The download page answers 200: $url"
