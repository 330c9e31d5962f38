#!/usr/bin/env bash
# Install (or remove) dlcount on a Debian/Ubuntu Apache 2.4 server. Run as root.
#
#   scripts/install.sh [--binary PATH] [--root DIR] [--site-title TEXT]
#                      [--allow CIDR]... [--import-logs] [--force-conf] [--dry-run]
#   scripts/install.sh --uninstall [--purge] [--dry-run]
#
# Install, idempotent (run it again after an upgrade, with the same flags):
#  1. takes --binary PATH, or builds with `cargo build --release` here, checks
#     that it runs, and installs it as /usr/local/bin/dlcount-pipe atomically
#     (temporary file in the same directory, then rename): Apache execs it on
#     every graceful restart and exits if the file is missing at that moment;
#  2. creates the system user dlcount and /var/lib/dlcount (dlcount, 0750);
#  3. writes /etc/dlcount/dlcount.toml only if absent (--root, --site-title);
#  4. lets dlcount write the pages into the download root (see below);
#  5. installs /etc/apache2/conf-available/dlcount.conf (--root, --allow),
#     a2enmod headers, a2enconf dlcount, apache2ctl configtest, and reloads
#     Apache only if the test passed; if it failed the conf is disabled
#     again and the script exits non-zero with Apache's message;
#  6. --import-logs: counts /var/log/apache2/access.log* (plain and .gz) and
#     renders the pages.
# An existing dlcount.conf that differs from the one this run would write is
# kept (you may have enabled the password in it); the new one is written
# beside it as dlcount.conf.new. --force-conf replaces it (backup kept).
#
# --uninstall disables the conf and reloads Apache first (so no restart ever
# looks for a missing binary), then removes the conf and the binary. It keeps
# the counts (/var/lib/dlcount), /etc/dlcount, the pages and the user unless
# --purge is given, which removes those too and gives the download root back.
#
# --dry-run prints every command that would change the system, changes nothing.
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
#    /var/lib/dlcount/index.html.pre-dlcount and handed to dlcount, which
#    replaces it at the first render.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

BIN_DEST=/usr/local/bin/dlcount-pipe
ETC_DIR=/etc/dlcount
TOML=$ETC_DIR/dlcount.toml
STATE_DIR=/var/lib/dlcount
CONF_NAME=dlcount
CONF_DEST=/etc/apache2/conf-available/$CONF_NAME.conf
LOG_GLOB_DIR=/var/log/apache2
USER_NAME=dlcount
DEFAULT_ROOT=/var/www/file-server

binary=""
root=""
site_title=""
allow=()
import_logs=0
uninstall=0
purge=0
dry_run=0
force_conf=0

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
say() { printf 'dlcount-install: %s\n' "$*"; }
die() { printf 'dlcount-install: error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --root) root=${2:?--root needs a directory}; shift 2 ;;
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
if [ "$(id -u)" -ne 0 ] && [ "$dry_run" = 0 ]; then
    die "run as root (or add --dry-run to see what it would do)"
fi
for tool in apache2ctl a2enconf a2disconf a2enmod; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: install Apache first (apt-get install apache2)"
done

TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT

# toml_root prints `root` from an existing dlcount.toml (a plain
# root = "..." line, as this script writes it).
toml_root() {
    sed -n 's/^[[:space:]]*root[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$TOML" 2>/dev/null | head -n 1
}

# toml_string TEXT prints TEXT as a TOML basic string (TEXT holds no
# control characters: checked with the options).
toml_string() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

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

conf_enabled() { [ -e "/etc/apache2/conf-enabled/$CONF_NAME.conf" ]; }

# ------------------------------------------------------------------ uninstall
if [ "$uninstall" = 1 ]; then
    if conf_enabled; then
        run a2disconf -q "$CONF_NAME"
        if [ "$dry_run" = 1 ] || apache2ctl configtest >/dev/null 2>&1; then
            reload_apache
        else
            say "apache2ctl configtest fails even without dlcount; not reloading (fix it, then reload)"
        fi
    fi
    # The old loggers exit on their own once Apache closes their pipes.
    for f in "$CONF_DEST" "$CONF_DEST.new" "$BIN_DEST"; do
        if [ -e "$f" ]; then run rm -f "$f"; fi
    done
    if [ "$purge" = 1 ]; then
        root=$(toml_root)
        root=${root:-$DEFAULT_ROOT}
        if [ -d "$root" ]; then
            if [ -d "$root/.stats" ]; then run rm -rf "$root/.stats"; fi
            if [ -e "$root/index.html" ] && [ "$(stat -c %U "$root/index.html")" = "$USER_NAME" ]; then
                run chown root:root "$root/index.html"
            fi
            if [ "$(stat -c %G "$root")" = "$USER_NAME" ]; then
                run chgrp root "$root"
                run chmod g-w,-t "$root"
            fi
        fi
        if [ -d "$STATE_DIR" ]; then run rm -rf "$STATE_DIR"; fi
        if [ -d "$ETC_DIR" ]; then run rm -rf "$ETC_DIR"; fi
        if getent passwd "$USER_NAME" >/dev/null; then
            if command -v deluser >/dev/null 2>&1; then
                run deluser --quiet --system "$USER_NAME"
            else
                run userdel "$USER_NAME"
            fi
        fi
        say "dlcount removed, counts and pages purged"
    else
        say "dlcount removed; kept $STATE_DIR (the counts), $ETC_DIR and the pages (--purge removes them)"
    fi
    exit 0
fi

# -------------------------------------------------------------------- install
# Which root: --root, else the existing config's, else the default. An
# existing dlcount.toml is never rewritten, so a different --root would make
# Apache and the logger disagree: refuse.
existing_root=""
[ -f "$TOML" ] && existing_root=$(toml_root)
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

# Preflight, before anything changes: the download root's group.
if [ -d "$root" ]; then
    root_group=$(stat -c %G "$root")
    case $root_group in
        root | "$USER_NAME") ;;
        *) die "$root belongs to group $root_group. dlcount must create files in it (index.html).
  Either: chgrp $USER_NAME $root   (then run this again),
  or keep the group and let dlcount in: adduser $USER_NAME $root_group && chmod g+w,+t $root" ;;
    esac
fi

# 1. The binary.
if [ -z "$binary" ]; then
    command -v cargo >/dev/null 2>&1 \
        || die "cargo not found: build as your user (cargo build --release) and pass --binary target/release/dlcount-pipe"
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

# 3. The logger's configuration, only if absent (it is yours to edit).
run install -d -o root -g root -m 0755 "$ETC_DIR"
if [ -f "$TOML" ]; then
    say "$TOML exists, kept as it is"
    [ -z "$site_title" ] || say "note: --site-title ignored, edit site_title in $TOML"
else
    {
        sed -e "s#^root = .*#root = $(toml_string "$root")#" "$REPO/apache-conf/dlcount.toml" \
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
run install -d -o "$USER_NAME" -g "$USER_NAME" -m 0755 "$root/.stats"
if [ -f "$root/index.html" ] && [ "$(stat -c %U "$root/index.html")" != "$USER_NAME" ]; then
    if [ ! -e "$STATE_DIR/index.html.pre-dlcount" ]; then
        run cp -p "$root/index.html" "$STATE_DIR/index.html.pre-dlcount"
    fi
    run chown "$USER_NAME:$USER_NAME" "$root/index.html"
    say "the old $root/index.html is saved as $STATE_DIR/index.html.pre-dlcount"
fi

# 5. Apache.
{
    # The shipped conf with this site's root and admin networks filled in.
    allow_line=""
    [ "${#allow[@]}" -eq 0 ] || allow_line="        Require ip ${allow[*]}"
    ALLOW_LINE=$allow_line awk -v root="$root" '
        { gsub("/var/www/file-server", root) }
        { print }
        /\(install\.sh --allow CIDR adds them here\)\./ && ENVIRON["ALLOW_LINE"] != "" { print ENVIRON["ALLOW_LINE"] }
    ' "$REPO/apache-conf/dlcount.conf"
} >"$TMPD/dlcount.conf"
if [ ! -e "$CONF_DEST" ]; then
    run install -o root -g root -m 0644 "$TMPD/dlcount.conf" "$CONF_DEST"
elif cmp -s "$TMPD/dlcount.conf" "$CONF_DEST"; then
    say "$CONF_DEST is up to date"
elif [ "$force_conf" = 1 ]; then
    run cp -p "$CONF_DEST" "$CONF_DEST.bak"
    run install -o root -g root -m 0644 "$TMPD/dlcount.conf" "$CONF_DEST"
    say "replaced $CONF_DEST (previous one in $CONF_DEST.bak)"
else
    run install -o root -g root -m 0644 "$TMPD/dlcount.conf" "$CONF_DEST.new"
    say "$CONF_DEST differs from this version, kept; the new one is $CONF_DEST.new (--force-conf to replace)"
fi
# headers: the cache headers of the pages (the conf works without it).
run a2enmod -q headers
was_enabled=0
conf_enabled && was_enabled=1
run a2enconf -q "$CONF_NAME"
if [ "$dry_run" = 1 ]; then
    printf '+ apache2ctl configtest\n'
elif ! out=$(apache2ctl configtest 2>&1); then
    # Leave Apache as it was: a broken configuration would stop the next
    # restart (logrotate does one every night).
    [ "$was_enabled" = 1 ] || a2disconf -q "$CONF_NAME"
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
        # names unchanged, into a private directory of dlcount's; a pipe
        # would not do: /dev/stdin is a root-owned pipe the dlcount process
        # may not open.
        if [ "$dry_run" = 1 ]; then
            import_dir=$STATE_DIR/import.XXXXXX
            printf '+ mktemp -d %q\n' "$import_dir"
        else
            import_dir=$(mktemp -d "$STATE_DIR/import.XXXXXX")
        fi
        run chown "$USER_NAME:$USER_NAME" "$import_dir"
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
    run runuser -u "$USER_NAME" -- "$BIN_DEST" render --config "$TOML"
fi

say "done. Statistics: http://localhost/.stats/ (from this host${allow[*]:+ or ${allow[*]}})"
