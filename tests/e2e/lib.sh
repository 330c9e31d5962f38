# shellcheck shell=bash
# Shared by tests/e2e/apache_e2e.sh and scripts/bench-apache.sh: a private
# Apache instance that touches nothing of the system's Apache.
#
# Its own ServerRoot in a temporary directory, its own minimal httpd.conf
# loading Debian's module files, its own PidFile, ErrorLog and runtime dir, a
# loopback-only Listen on a free unprivileged port. The system apache2
# service is never started, reloaded or reconfigured, and /etc/apache2 is not
# even read: /etc/mime.types is the one system file the instance uses.
#
# Usage: source this file, set PA_DIR (an empty temporary directory), then
#   pa_require_tools PKG:COMMAND ...
#   pa_setup PORT DOCROOT [EXTRA_CONF...]   write the configuration
#   pa_start / pa_graceful / pa_restart / pa_stop
#   pa_select DIR                           switch between several instances
# Everything runs the apache2 binary directly (no apache2ctl, which would
# source /etc/apache2/envvars and point at the system's run directory).

PA_MODDIR=${PA_MODDIR:-/usr/lib/apache2/modules}
PA_HTTPD=${PA_HTTPD:-/usr/sbin/apache2}

pa_log() { printf '# %s\n' "$*" >&2; }
pa_die() { printf 'Bail out! %s\n' "$*" >&2; exit 2; }

# pa_require_tools PKG:COMMAND... installs the Debian packages whose command
# is missing (as root, non-interactively); without root it only names them.
pa_require_tools() {
    local spec pkg cmd missing=()
    for spec in "$@"; do
        pkg=${spec%%:*}
        cmd=${spec#*:}
        command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        pa_die "missing packages (run as root or install them): ${missing[*]}"
    fi
    pa_log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q "${missing[@]}" >&2 \
        || { DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q >&2 \
             && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q "${missing[@]}" >&2; } \
        || pa_die "apt-get install ${missing[*]} failed"
}

# pa_binary [PATH] prints the absolute path of the dlcount-pipe to test
# (default target/release/dlcount-pipe, relative to the current directory).
pa_binary() {
    local arg=${1:-target/release/dlcount-pipe}
    case $arg in
        /*) printf '%s\n' "$arg" ;;
        *) printf '%s\n' "$PWD/$arg" ;;
    esac
}

# pa_free_port prints a TCP port on 127.0.0.1 that was free a moment ago (the
# kernel picks it from the ephemeral range, so no well-known service collides).
pa_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# pa_setup PORT DOCROOT [EXTRA_CONF...] writes $PA_DIR/httpd.conf.
# The instance mirrors a stock Debian site: a <VirtualHost> with its own plain
# CustomLog ($PA_DIR/logs/access.log, the same "dlcount" format), so that the
# test proves the shipped dlcount.conf also sees requests of vhosts that log
# on their own, and so that the plain log is Apache's own record of every line
# the piped logger should have received. EXTRA_CONF files are included at
# server level, before the vhost, as conf-enabled/ is on Debian.
# PA_NO_PLAIN_LOG=1 leaves the vhost's plain CustomLog out (the benchmark's
# "logging only through dlcount" instance).
pa_setup() {
    local port=$1 docroot=$2 f
    shift 2
    if [ -z "${PA_DIR:-}" ] || [ ! -d "$PA_DIR" ]; then
        pa_die "PA_DIR must be an existing directory"
    fi
    mkdir -p "$PA_DIR/run" "$PA_DIR/logs"
    printf '%s\n' "$port" >"$PA_DIR/port"
    pa_select "$PA_DIR"
    {
        cat <<EOF
# Private test instance; written by tests/e2e/lib.sh.
ServerRoot "$PA_DIR"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$PA_PIDFILE"
DefaultRuntimeDir "$PA_DIR/run"
ErrorLog "$PA_ERRLOG"
LogLevel warn
# Keep the shutdown of old workers short, so graceful-stop never lingers.
GracefulShutdownTimeout 10

LoadModule mpm_event_module   $PA_MODDIR/mod_mpm_event.so
LoadModule authz_core_module  $PA_MODDIR/mod_authz_core.so
LoadModule authz_host_module  $PA_MODDIR/mod_authz_host.so
LoadModule authz_user_module  $PA_MODDIR/mod_authz_user.so
LoadModule authn_core_module  $PA_MODDIR/mod_authn_core.so
LoadModule authn_file_module  $PA_MODDIR/mod_authn_file.so
LoadModule auth_basic_module  $PA_MODDIR/mod_auth_basic.so
LoadModule dir_module         $PA_MODDIR/mod_dir.so
LoadModule mime_module        $PA_MODDIR/mod_mime.so
LoadModule headers_module     $PA_MODDIR/mod_headers.so

TypesConfig /etc/mime.types
DirectoryIndex index.html
AddDefaultCharset UTF-8
# Like Debian's apache2.conf: nothing outside the document root.
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>
EOF
        # Apache refuses to run its workers as root; as a normal user the
        # directives would only produce warnings, so they are left out.
        if [ "$(id -u)" -eq 0 ]; then
            printf 'User nobody\nGroup %s\n' "$(id -gn nobody 2>/dev/null || echo nogroup)"
        fi
        for f in "$@"; do
            printf 'Include "%s"\n' "$f"
        done
        cat <<EOF
<VirtualHost 127.0.0.1:$port>
    DocumentRoot "$docroot"
EOF
        if [ "${PA_NO_PLAIN_LOG:-0}" != 1 ]; then
            cat <<EOF
    LogFormat "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" plain
    CustomLog "$PA_ACCESSLOG" plain
EOF
        fi
        cat <<EOF
</VirtualHost>
EOF
    } >"$PA_CONF"
}

# pa_select DIR makes the instance set up in DIR the current one (the pa_*
# functions act on it), so that one script can drive several instances.
pa_select() {
    PA_DIR=$1
    PA_PORT=$(cat "$PA_DIR/port")
    PA_CONF=$PA_DIR/httpd.conf
    PA_PIDFILE=$PA_DIR/run/httpd.pid
    PA_ERRLOG=$PA_DIR/logs/error.log
    PA_ACCESSLOG=$PA_DIR/logs/access.log
}

# pa_install_dlcount_conf SRC DEST BINARY TOML ROOT copies a shipped
# apache-conf file, changing only the install-time paths, exactly the three
# that scripts/install.sh fills in.
pa_install_dlcount_conf() {
    sed -e "s#/usr/local/bin/dlcount-pipe#$3#g" \
        -e "s#/etc/dlcount/dlcount.toml#$4#g" \
        -e "s#/var/www/file-server#$5#g" "$1" >"$2"
}

pa_httpd() {
    # TZ is passed through on purpose: %t is written in Apache's local time.
    "$PA_HTTPD" -d "$PA_DIR" -f "$PA_CONF" "$@"
}

pa_pid() { cat "$PA_PIDFILE" 2>/dev/null || true; }

pa_configtest() { pa_httpd -t 2>&1; }

# pa_wait_up waits (up to 10 s) until the instance answers HTTP.
pa_wait_up() {
    local _
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PA_PORT/"; then
            return 0
        fi
        sleep 0.1
    done
    pa_die "private Apache did not answer on port $PA_PORT (see $PA_ERRLOG)"
}

pa_start() {
    pa_httpd -k start || pa_die "apache2 -k start failed: $(tail -n 5 "$PA_ERRLOG" 2>/dev/null)"
    pa_wait_up
}

# pa_generation prints how many "resuming normal operations" notices the
# error log holds: one per start and per completed (graceful) restart.
pa_generation() { grep -c 'resuming normal operations' "$PA_ERRLOG" 2>/dev/null || true; }

# pa_wait_generation N: wait (up to 15 s) for the Nth such notice.
pa_wait_generation() {
    local _
    for _ in $(seq 1 150); do
        [ "$(pa_generation)" -ge "$1" ] && return 0
        sleep 0.1
    done
    pa_die "Apache did not finish restarting (see $PA_ERRLOG)"
}

pa_graceful() {
    local gen
    gen=$(pa_generation)
    pa_httpd -k graceful
    pa_wait_generation $((gen + 1))
    pa_wait_up
}

pa_restart() {
    local gen
    gen=$(pa_generation)
    pa_httpd -k restart
    pa_wait_generation $((gen + 1))
    pa_wait_up
}

# pa_stop stops the instance and waits (up to 20 s) for the parent to exit.
pa_stop() {
    local pid _
    pid=$(pa_pid)
    [ -n "$pid" ] || return 0
    pa_httpd -k stop 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    pa_log "apache2 ($pid) ignored stop for 20 s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# pa_pids_with ARG prints the PIDs of processes whose command line contains
# ARG. Used with a path unique to this run (the temporary dlcount.toml), so it
# only ever finds the loggers this instance started.
pa_pids_with() {
    local d cmd
    for d in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
        case $cmd in
            *"$1"*) printf '%s\n' "${d#/proc/}" ;;
        esac
    done
}

# pa_wait_no_pids_with ARG SECONDS: wait until no such process is left.
pa_wait_no_pids_with() {
    local _
    for _ in $(seq 1 $(($2 * 10))); do
        [ -z "$(pa_pids_with "$1")" ] && return 0
        sleep 0.1
    done
    return 1
}

# pa_noon_tz prints a POSIX TZ value under which it is about noon right now,
# so that a test run can never straddle midnight: the counts depend on the
# calendar day written in %t.
pa_noon_tz() {
    local utc_hour off
    utc_hour=$(date -u +%H)
    off=$((10#$utc_hour - 12))
    # POSIX offsets are positive west of Greenwich: local = UTC - offset.
    if [ "$off" -ge 0 ]; then
        printf 'DLT+%d\n' "$off"
    else
        printf 'DLT%d\n' "$off"
    fi
}
