# shellcheck shell=bash
# The nginx steps of scripts/install.sh (sourced by it; not run on its own):
# `install.sh --nginx` on a Debian nginx server, and the part of
# `install.sh --uninstall` that takes them back.
#
# Install (step 5 of install.sh, for nginx instead of Apache):
#  a. /etc/sysctl.d/60-dlcount.conf (net.unix.max_dgram_qlen = 1024, see
#     scripts/nginx/60-dlcount-unix-queue.conf), applied at once;
#  b. the listener, before nginx sends it anything: with systemd the unit
#     /etc/systemd/system/dlcount-listen.service (scripts/systemd/, the
#     binary, root and nginx's group filled in), enabled and (re)started;
#     without systemd `dlcount-pipe listen --daemon` (pid file
#     /run/dlcount/listen.pid, messages in /var/log/dlcount/listen.log,
#     rotated by /etc/logrotate.d/dlcount-listen), started now and not at
#     boot (the last lines say so);
#  c. /etc/nginx/conf.d/dlcount.conf (the log_format dlcount and the two
#     access_log lines: the socket, /var/log/nginx/dlcount.log),
#     /etc/nginx/snippets/dlcount-stats.conf (the /.stats/ allow/deny block,
#     --allow CIDRs added) and, with --site, /etc/nginx/sites-available/dlcount
#     (a server for the root that includes that block) enabled — as the
#     default server in place of Debian's stock `default` site, or with
#     --server-name NAME beside the others;
#  d. `nginx -t`, and nginx reloaded only if it passes; if it fails, what
#     this run changed in /etc/nginx is taken back and the script stops —
#     only that: the listener (running, recorded) and the sysctl file stay,
#     harmless without nginx sending, for the next run or --uninstall.
# Without --site, a server of your own must serve the root and include the
# snippet (`include snippets/dlcount-stats.conf;`): the statistics are
# guarded there, not server-wide; the preflight refuses before anything
# changes when no enabled server includes it.
#
# Every change is recorded in /etc/dlcount/nginx-changes ("file PATH",
# "ensite dlcount", "dissite default -> TARGET", "service dlcount-listen",
# "daemon dlcount-listen"), only when this script made it; --uninstall
# undoes exactly those: nginx first (its confs out, nginx -t, reload, so it
# stops sending), then the listener (its logrotate file first), then the
# sysctl file (the running kernel keeps the value until reboot).
#
# Root never writes through a path dlcount controls: /run/dlcount is
# dlcount's (so the listener, once it is dlcount, can remove its socket and
# pid file at exit), but the listener creates the socket with bind() (never
# through a link) and gives it away with lchown semantics, and writes the
# pid file with O_NOFOLLOW (src/daemon.rs). A pid file is only ever
# signalled after /proc says its pid is this install's `dlcount-pipe
# listen` (listener_stop): a listener killed with SIGKILL leaves its pid
# file behind, and the pid in it may since belong to another process.

NGINX_ETC=/etc/nginx
NGINX_CONF_DEST=$NGINX_ETC/conf.d/dlcount.conf
NGINX_SNIPPET_DEST=$NGINX_ETC/snippets/dlcount-stats.conf
NGINX_SITE_DEST=$NGINX_ETC/sites-available/dlcount
NGINX_SITE_LINK=$NGINX_ETC/sites-enabled/dlcount
NGINX_STOCK_SITE=default
NGINX_STOCK_DOCROOT=/var/www/html
NGINX_CHANGES=$ETC_DIR/nginx-changes
NGINX_LOG_DIR=/var/log/nginx
SYSCTL_DEST=/etc/sysctl.d/60-dlcount.conf
LISTEN_UNIT=/etc/systemd/system/dlcount-listen.service
LISTEN_RUN=/run/dlcount
LISTEN_SOCK=$LISTEN_RUN/listen.sock
LISTEN_PIDFILE=$LISTEN_RUN/listen.pid
LISTEN_LOG_DIR=/var/log/dlcount
LISTEN_LOG=$LISTEN_LOG_DIR/listen.log
LISTEN_LOGROTATE=/etc/logrotate.d/dlcount-listen

has_systemd() { [ -d /run/systemd/system ]; }

# nginx_group: the group nginx's workers run as (`user` in nginx.conf, else www-data).
nginx_group() {
    local u
    u=$(sed -n 's/^[[:space:]]*user[[:space:]]\{1,\}\([^[:space:];]*\).*/\1/p' "$NGINX_ETC/nginx.conf" 2>/dev/null | head -n 1)
    id -gn "${u:-www-data}" 2>/dev/null || echo www-data
}

ngx_recorded() { [ -f "$NGINX_CHANGES" ] && grep -qxF "$1" "$NGINX_CHANGES"; }
ngx_record() {
    ngx_recorded "$1" && return 0
    if [ "$dry_run" = 1 ]; then
        printf '+ echo %q >> %q\n' "$1" "$NGINX_CHANGES"
    else
        install -d -m 0755 "$ETC_DIR"
        printf '%s\n' "$1" >>"$NGINX_CHANGES"
    fi
}
ngx_unrecord() {
    ngx_recorded "$1" || return 0
    if [ "$dry_run" = 1 ]; then
        printf '+ sed -i %q %q\n' "\\|^$1\$|d" "$NGINX_CHANGES"
    else
        grep -vxF "$1" "$NGINX_CHANGES" >"$TMPD/ngx-changes" || true
        cat "$TMPD/ngx-changes" >"$NGINX_CHANGES"
    fi
}

nginx_pidfile() {
    local p
    p=$(sed -n 's/^[[:space:]]*pid[[:space:]]\{1,\}\([^[:space:];]*\).*/\1/p' "$NGINX_ETC/nginx.conf" 2>/dev/null | head -n 1)
    printf '%s\n' "${p:-/run/nginx.pid}"
}
nginx_running() {
    if has_systemd; then
        systemctl is-active --quiet nginx
    else
        local p
        p=$(nginx_pidfile)
        [ -s "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null
    fi
}
nginx_reload() {
    if ! nginx_running; then
        say "nginx is not running; the configuration applies when it starts"
    elif has_systemd; then
        run systemctl reload nginx
    else
        run ngx_signal_reload
    fi
}
# nginx -s reload, without its "signal process started" notice.
ngx_signal_reload() {
    local out rc=0
    out=$(nginx -s reload 2>&1) || rc=$?
    printf '%s\n' "$out" | grep -v 'signal process started' >&2 || true
    return "$rc"
}

# ngx_sites: the enabled sites other than ours, one name per line.
ngx_sites() {
    local f n
    for f in "$NGINX_ETC"/sites-enabled/*; do
        [ -e "$f" ] || continue
        n=${f##*/}
        [ "$n" = dlcount ] || printf '%s\n' "$n"
    done
}
ngx_site_root() { # the first root directive of sites-available/NAME
    sed -n 's/^[[:space:]]*root[[:space:]]\{1,\}\([^[:space:];]*\).*/\1/p' "$NGINX_ETC/sites-available/$1" 2>/dev/null | head -n 1
}

# nginx_preflight: before anything changes (sets ngx_disable_stock).
ngx_disable_stock=0
nginx_preflight() {
    command -v nginx >/dev/null 2>&1 || die "nginx not found: install it first (apt-get install nginx)"
    [ -d "$NGINX_ETC/conf.d" ] && [ -d "$NGINX_ETC/sites-enabled" ] && [ -d "$NGINX_ETC/snippets" ] \
        || die "$NGINX_ETC is not Debian's nginx layout (conf.d, sites-enabled, snippets)"
    grep -q '^[[:space:]]*include[[:space:]]\{1,\}/etc/nginx/conf.d/\*\.conf;' "$NGINX_ETC/nginx.conf" \
        || die "$NGINX_ETC/nginx.conf does not include conf.d/*.conf in its http {} block: add it, then run this again"
    # A dlcount.toml of an earlier (Apache) install is kept as it is: its
    # format must be nginx's.
    if [ -f "$TOML" ] && ! { [ "$package" = 1 ] && pristine_conffile "$TOML"; }; then
        local fmt
        fmt=$(sed -n 's/^[[:space:]]*format[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$TOML" | head -n 1)
        [ "$fmt" = nginx_dlcount ] || die "$TOML says format = \"${fmt:-combined}\"; nginx's lines are written in the dlcount format:
  set format = \"nginx_dlcount\" in it (see scripts/nginx/dlcount.conf), then run this again"
    fi
    if [ "$site" = 1 ] && [ -z "$server_name" ]; then
        local others
        mapfile -t others < <(ngx_sites)
        if [ "${#others[@]}" -eq 1 ] && [ "${others[0]}" = "$NGINX_STOCK_SITE" ] \
            && [ "$(ngx_site_root "$NGINX_STOCK_SITE")" = "$NGINX_STOCK_DOCROOT" ] && [ "$root" != "$NGINX_STOCK_DOCROOT" ]; then
            ngx_disable_stock=1
        elif [ "${#others[@]}" -gt 0 ]; then
            die "--site without --server-name makes dlcount the default server, but these sites are enabled: ${others[*]}.
  Either give the download site a name of its own: add --server-name downloads.example.org,
  or serve $root from your server with 'include snippets/dlcount-stats.conf;' in it and run this again without --site."
        fi
    elif [ "$site" = 0 ] && ! grep -rqs 'snippets/dlcount-stats\.conf' "$NGINX_ETC/sites-enabled/" "$NGINX_ETC/conf.d/"; then
        die "without --site, the server {} that serves $root must guard the statistics: add the line
      include snippets/dlcount-stats.conf;
  to it (do not reload nginx yet: this script creates that file and tests the configuration first),
  then run this again; or run it with --site (a server of dlcount's own for $root)."
    fi
}

# ngx_install_file SRC DEST: DEST gets SRC's content (0644, root's). A DEST
# this script did not write and that differs is kept, SRC going beside it as
# DEST.new (--force-conf replaces it, backup kept). Records what it created.
ngx_install_file() {
    local src=$1 dest=$2
    if [ -e "$dest" ] && cmp -s "$src" "$dest"; then
        say "$dest is up to date"
    elif [ ! -e "$dest" ] || ngx_recorded "file $dest"; then
        [ -e "$dest" ] || ngx_run_changes+=("file $dest")
        run install -o root -g root -m 0644 "$src" "$dest"
        ngx_record "file $dest"
    elif [ "$force_conf" = 1 ]; then
        run cp -p "$dest" "$dest.bak"
        run install -o root -g root -m 0644 "$src" "$dest"
        say "replaced $dest (previous one in $dest.bak)"
    else
        run install -o root -g root -m 0644 "$src" "$dest.new"
        say "$dest differs from this version, kept; the new one is $dest.new (--force-conf to replace)"
    fi
}

# ngx_undo LINE...: takes back the given changes (last first) and forgets them.
ngx_undo() {
    local i line
    for ((i = $#; i >= 1; i--)); do
        line=${!i}
        case $line in
            "file "*)
                if [ -e "${line#file }" ]; then run rm -f "${line#file }"; fi
                ;;
            "ensite dlcount")
                if [ -L "$NGINX_SITE_LINK" ]; then run rm -f "$NGINX_SITE_LINK"; fi
                ;;
            "dissite "*)
                # "dissite NAME -> TARGET": the link as it was.
                local name=${line#dissite } target
                target=${name#* -> }
                name=${name%% -> *}
                if [ ! -e "$NGINX_ETC/sites-enabled/$name" ] && [ -e "$NGINX_ETC/sites-available/$name" ]; then
                    run ln -s "$target" "$NGINX_ETC/sites-enabled/$name"
                fi
                ;;
            "service dlcount-listen")
                run systemctl disable --now dlcount-listen
                ;;
            "daemon dlcount-listen")
                listener_stop
                ;;
        esac
        ngx_unrecord "$line"
    done
}

# listener_is_ours PID: whether PID runs the listener this script starts:
# /proc/PID/exe is dlcount-pipe where install.sh puts it ($BIN_DEST, or the
# other of /usr/local/bin and /usr/bin after a switch to or from the
# package; " (deleted)" once an upgrade has replaced the file), its first
# argument is `listen` and it was given `--pidfile $LISTEN_PIDFILE`.
listener_is_ours() {
    local pid=$1 exe args i
    [[ $pid =~ ^[1-9][0-9]{0,9}$ ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    exe=${exe% (deleted)}
    case $exe in
        "$BIN_DEST" | /usr/local/bin/dlcount-pipe | /usr/bin/dlcount-pipe) ;;
        *) return 1 ;;
    esac
    mapfile -d '' -t args <"/proc/$pid/cmdline" 2>/dev/null || return 1
    [ "${args[1]:-}" = listen ] || return 1
    for ((i = 2; i + 1 < ${#args[@]}; i++)); do
        [ "${args[i]}" = --pidfile ] && [ "${args[i + 1]}" = "$LISTEN_PIDFILE" ] && return 0
    done
    return 1
}

# listener_stop: the background listener (no systemd) gets SIGTERM, as
# systemd would send it (what its socket holds is committed), within 30 s.
# A pid file whose pid is not our listener (it was killed with SIGKILL and
# the pid reused, or it is gone) is removed, and nothing is signalled.
listener_stop() {
    local pid _
    [ -e "$LISTEN_PIDFILE" ] || return 0
    pid=$(head -c 32 "$LISTEN_PIDFILE" | tr -d '[:space:]')
    if ! listener_is_ours "$pid"; then
        say "$LISTEN_PIDFILE is stale (pid ${pid:-none} is not our dlcount-pipe listen): removed, nothing signalled"
        run rm -f "$LISTEN_PIDFILE"
        return 0
    fi
    if [ "$dry_run" = 1 ]; then
        printf '+ kill -TERM %s (dlcount-pipe listen)\n' "$pid"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            # The listener removes its pid file at exit (it is dlcount's
            # directory); one left behind would be stale from now on.
            if [ -e "$LISTEN_PIDFILE" ]; then
                say "the listener left $LISTEN_PIDFILE behind: removed"
                rm -f "$LISTEN_PIDFILE"
            fi
            return 0
        fi
        sleep 0.1
    done
    say "warning: the listener (pid $pid) did not exit within 30 s of SIGTERM"
}

# listener_start: the listener without systemd, as root: it creates the
# socket, gives it to dlcount and nginx's group, writes its pid file and
# becomes `user` of the config (dlcount) before reading a datagram.
listener_start() {
    local group=$1 _
    run install -d -o "$USER_NAME" -g "$USER_NAME" -m 0751 "$LISTEN_RUN"
    run install -d -o root -g root -m 0755 "$LISTEN_LOG_DIR"
    listener_stop
    run "$BIN_DEST" listen --config "$TOML" --socket "$LISTEN_SOCK" --socket-group "$group" \
        --daemon --pidfile "$LISTEN_PIDFILE" --log "$LISTEN_LOG"
    [ "$dry_run" = 1 ] && return 0
    for _ in $(seq 1 50); do [ -S "$LISTEN_SOCK" ] && return 0; sleep 0.1; done
    tail -n 5 "$LISTEN_LOG" >&2 2>/dev/null || true
    die "the listener did not create $LISTEN_SOCK (see $LISTEN_LOG)"
}

# nginx_install: steps a–d of the header (after install.sh's steps 1–4).
ngx_run_changes=()
nginx_install() {
    local group
    group=$(nginx_group)
    # a. The Unix socket's queue.
    ngx_install_file "$REPO/scripts/nginx/60-dlcount-unix-queue.conf" "$SYSCTL_DEST"
    if ! run sysctl -q -p "$SYSCTL_DEST" 2>/dev/null; then
        say "note: could not apply $SYSCTL_DEST now (a container?); nginx may drop lines in bursts until it is (README: nginx)"
    fi
    # b. The listener, before nginx sends it anything.
    if has_systemd; then
        sed -e "s#/usr/local/bin/dlcount-pipe#$BIN_DEST#g" -e "s#/var/www/file-server#$root#g" \
            -e "s#www-data#$group#g" "$REPO/scripts/systemd/dlcount-listen.service" >"$TMPD/dlcount-listen.service"
        ngx_install_file "$TMPD/dlcount-listen.service" "$LISTEN_UNIT"
        run systemctl daemon-reload
        if ! ngx_recorded "service dlcount-listen"; then
            ngx_run_changes+=("service dlcount-listen")
        fi
        run systemctl enable --quiet dlcount-listen
        run systemctl restart dlcount-listen
        ngx_record "service dlcount-listen"
    else
        ngx_recorded "daemon dlcount-listen" || ngx_run_changes+=("daemon dlcount-listen")
        listener_start "$group"
        ngx_record "daemon dlcount-listen"
        # Its messages (a line per problem, a summary at exit) grow for
        # ever otherwise; logrotate is what a Debian admin looks in.
        if [ -d /etc/logrotate.d ]; then
            ngx_install_file "$REPO/scripts/nginx/dlcount-listen.logrotate" "$LISTEN_LOGROTATE"
        else
            say "note: logrotate is not installed: $LISTEN_LOG is not rotated (scripts/nginx/dlcount-listen.logrotate)"
        fi
        say "no systemd: the listener runs in the background now (pid file $LISTEN_PIDFILE, log $LISTEN_LOG),"
        say "  not started at boot: start it from your init system before nginx with these commands:"
        say "  install -d -o $USER_NAME -g $USER_NAME -m 0751 $LISTEN_RUN"
        say "  $BIN_DEST listen --config $TOML --socket $LISTEN_SOCK --socket-group $group --daemon --pidfile $LISTEN_PIDFILE --log $LISTEN_LOG"
    fi
    # c. nginx's configuration.
    sed -e "s#/run/dlcount/listen.sock#$LISTEN_SOCK#g" "$REPO/scripts/nginx/dlcount.conf" >"$TMPD/nginx-dlcount.conf"
    ngx_install_file "$TMPD/nginx-dlcount.conf" "$NGINX_CONF_DEST"
    {
        local a
        while IFS= read -r line; do
            printf '%s\n' "$line"
            if [[ $line == *"allow ::1;"* ]]; then
                for a in "${allow[@]}"; do printf '    allow %s;\n' "$a"; done
            fi
        done <"$REPO/scripts/nginx/dlcount-stats.conf"
    } >"$TMPD/dlcount-stats.conf"
    ngx_install_file "$TMPD/dlcount-stats.conf" "$NGINX_SNIPPET_DEST"
    if [ "$site" = 1 ]; then
        awk -v root="$root" -v name="$server_name" '
            { gsub("/var/www/file-server", root) }
            name != "" && /listen .*default_server;/ { sub(/ default_server;/, ";") }
            name != "" && /^[[:space:]]*#server_name / { sub(/#server_name .*/, "server_name " name ";") }
            { print }
        ' "$REPO/scripts/nginx/dlcount-site.conf" >"$TMPD/dlcount-site.conf"
        ngx_install_file "$TMPD/dlcount-site.conf" "$NGINX_SITE_DEST"
        if [ "$ngx_disable_stock" = 1 ] && [ -L "$NGINX_ETC/sites-enabled/$NGINX_STOCK_SITE" ]; then
            local change
            change="dissite $NGINX_STOCK_SITE -> $(readlink "$NGINX_ETC/sites-enabled/$NGINX_STOCK_SITE")"
            run rm -f "$NGINX_ETC/sites-enabled/$NGINX_STOCK_SITE"
            ngx_record "$change"
            ngx_run_changes+=("$change")
        fi
        if [ ! -e "$NGINX_SITE_LINK" ]; then
            run ln -s ../sites-available/dlcount "$NGINX_SITE_LINK"
            ngx_record "ensite dlcount"
            ngx_run_changes+=("ensite dlcount")
        fi
    fi
    # d. Test, then reload; or take this run's changes to nginx back.
    if [ "$dry_run" = 1 ]; then
        printf '+ nginx -t\n'
    elif ! out=$(nginx -t 2>&1); then
        # Only nginx's part: the listener, its unit and log rotation and the
        # sysctl file stay installed and recorded — they do nothing while
        # nginx sends nothing, and the next run (or --uninstall) finds them.
        local take=()
        for line in "${ngx_run_changes[@]}"; do
            case $line in "file $NGINX_ETC/"* | "ensite "* | "dissite "*) take+=("$line") ;; esac
        done
        [ "${#take[@]}" -eq 0 ] || ngx_undo "${take[@]}"
        printf '%s\n' "$out" >&2
        die "nginx -t failed; what this run changed in $NGINX_ETC is taken back, nginx not reloaded.
  The listener stays installed and running (nothing reaches it until nginx is configured):
  fix what nginx -t says and run this again, or run --uninstall to remove it too"
    fi
    nginx_reload
}

# nginx_import_logs: step 6 for nginx: Debian's own access.log* (nginx's
# predefined combined: a download is counted on the day it ended, see the
# README) and the dlcount.log* of an earlier install (the dlcount format).
nginx_import_logs() {
    local logs=() f import_dir copies=() rc=0 fmt
    for fmt in nginx_combined config; do
        if [ "$fmt" = nginx_combined ]; then
            mapfile -t logs < <(find "$NGINX_LOG_DIR" -maxdepth 1 -name 'access.log*' -type f | sort)
        else
            mapfile -t logs < <(find "$NGINX_LOG_DIR" -maxdepth 1 -name 'dlcount.log*' -type f | sort)
        fi
        [ "${#logs[@]}" -gt 0 ] || continue
        if [ "$dry_run" = 1 ]; then
            import_dir=$STATE_DIR-import.XXXXXX
        else
            import_dir=$(private_copy_dir import)
        fi
        copies=()
        for f in "${logs[@]}"; do
            run install -o "$USER_NAME" -g "$USER_NAME" -m 0600 "$f" "$import_dir/${f##*/}"
            copies+=("$import_dir/${f##*/}")
        done
        say "importing ${#logs[@]} nginx log files (${fmt/config/the dlcount format})"
        if [ "$fmt" = nginx_combined ]; then
            run runuser -u "$USER_NAME" -- "$BIN_DEST" import --config "$TOML" --quiet --format nginx_combined "${copies[@]}" || rc=$?
        else
            run runuser -u "$USER_NAME" -- "$BIN_DEST" import --config "$TOML" --quiet "${copies[@]}" || rc=$?
        fi
        run rm -rf "$import_dir"
        [ "$rc" = 0 ] || die "import of ${logs[*]} failed (exit $rc); run it again once fixed, it never counts twice"
    done
    run runuser -u "$USER_NAME" -- "$BIN_DEST" render --config "$TOML"
}

# nginx_uninstall: everything recorded, in the order of the header.
nginx_uninstall() {
    local lines=() confs=() others=() line
    if [ "$purge" = 1 ] && [ -d "$LISTEN_LOG_DIR" ]; then run rm -rf "$LISTEN_LOG_DIR"; fi
    [ -f "$NGINX_CHANGES" ] || return 0
    mapfile -t lines <"$NGINX_CHANGES"
    for line in "${lines[@]}"; do
        case $line in
            "service "* | "daemon "* | "file $SYSCTL_DEST" | "file $LISTEN_UNIT" | "file $LISTEN_LOGROTATE") others+=("$line") ;;
            *) confs+=("$line") ;;
        esac
    done
    # nginx stops sending before the listener goes.
    [ "${#confs[@]}" -eq 0 ] || ngx_undo "${confs[@]}"
    for f in "$NGINX_CONF_DEST.new" "$NGINX_SNIPPET_DEST.new" "$NGINX_SITE_DEST.new"; do
        if [ -e "$f" ]; then run rm -f "$f"; fi
    done
    if [ "$dry_run" = 1 ]; then
        nginx_reload
    elif command -v nginx >/dev/null 2>&1 && nginx -t >/dev/null 2>&1; then
        nginx_reload
    else
        say "nginx -t fails even without dlcount; not reloading nginx (fix it, then reload)"
    fi
    local had_unit=0
    ngx_recorded "file $LISTEN_UNIT" && had_unit=1
    [ "${#others[@]}" -eq 0 ] || ngx_undo "${others[@]}"
    if has_systemd && [ "$had_unit" = 1 ]; then run systemctl daemon-reload; fi
    if [ "$dry_run" = 0 ] && [ ! -s "$NGINX_CHANGES" ]; then rm -f "$NGINX_CHANGES"; fi
    say "nginx no longer sends to dlcount; the listener is stopped (the kernel keeps net.unix.max_dgram_qlen until reboot)"
}

# ngx_curl [CURL-ARGS...] URL: the status code of a GET at this host.
ngx_curl() {
    local host=${server_name:-localhost}
    curl -sS -o "$TMPD/body" -w '%{http_code}' --max-time 10 \
        --resolve "$host:80:127.0.0.1" "$@" 2>/dev/null || true
}

# nginx_probe: step 7 for nginx: the root is served at http://localhost/
# (http://NAME/ with --server-name), its page answers 200, and the
# statistics are refused to an address that is not allowed (127.0.0.2).
# Returns 3 when one of them fails (everything else is in place).
nginx_probe() {
    local host=${server_name:-localhost} url probe_path probe token served=no code stats_code _
    url=http://$host/
    if [ "$dry_run" = 1 ]; then
        printf '+ curl %s (the root must be served there, /.stats/ refused to 127.0.0.2)\n' "$url"
        say "dry run: would end with $url"
        return 0
    fi
    if ! nginx_running; then
        say "nginx is not running: start it (systemctl start nginx), then open $url"
        return 3
    fi
    probe_path=$(mktemp --suffix=.txt "$root/dlcount-probe-XXXXXXXXXX")
    probe=${probe_path##*/}
    token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s\n' "$token" >"$probe_path"
    chmod 0644 "$probe_path"
    for _ in $(seq 1 20); do
        if [ "$(ngx_curl "$url$probe")" = 200 ] && [ "$(cat "$TMPD/body")" = "$token" ]; then
            served=yes
            break
        fi
        sleep 0.5
    done
    rm -f "$probe_path"
    if [ "$served" = no ]; then
        say "nginx does not serve $root at $url."
        if [ "$site" = 1 ]; then
            say "Check 'nginx -T': the server in $NGINX_SITE_DEST must answer for $host on port 80."
        else
            say "Serve it from your server for $host (root $root; with include snippets/dlcount-stats.conf;), or run this again with --site."
        fi
        return 3
    fi
    code=$(ngx_curl "$url")
    if [ "$code" != 200 ]; then
        say "$url answers $code, not 200: see /var/log/nginx/error.log (dlcount-pipe render --config $TOML writes $root/index.html)"
        return 3
    fi
    stats_code=$(ngx_curl --interface 127.0.0.2 "${url}.stats/")
    if [ "$stats_code" != 403 ]; then
        say "the statistics ${url}.stats/ answer $stats_code to 127.0.0.2, not 403: the server for $root must include snippets/dlcount-stats.conf"
        return 3
    fi
    say "statistics: ${url}.stats/ (from this host${allow[*]:+ or ${allow[*]}})"
    [ -z "$server_name" ] || say "(checked at this host: $host must resolve to this server for visitors)"
    say "done. The download page answers 200: $url"
}
