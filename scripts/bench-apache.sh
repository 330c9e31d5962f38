#!/usr/bin/env bash
# What does dlcount cost Apache? Four private Apache instances
# (tests/e2e/lib.sh) serve the same tree on loopback:
#   plain    CustomLog to a plain file, as a site logs today (the baseline)
#   floor    no file; a GlobalLog pipe to /bin/cat (stdout /dev/null) instead:
#            what any piped logger costs on this machine, the pipe and one
#            more process competing for the same cores
#   dlcount  no file; the shipped apache-conf/dlcount.conf (pipe to
#            dlcount-pipe, its access rules and headers) instead
#   both     the plain file and dlcount.conf, the setup the README recommends
#            (dlcount plus Apache's own log to recover from)
# wrk runs against each in rotating order, several rounds, and the medians
# are compared: dlcount/plain is the figure with a target (logging through
# dlcount instead of to a file); dlcount/floor shows how much of that cost is
# dlcount's own, both/plain what keeping the plain log as well costs.
#   small  GET of a 1 KiB file: lines the logger parses and drops
#          (target: ratio >= 0.97)
#   iso    "Range: bytes=0-1023" on a sparse ISO, 206: every line a counted
#          request, so the database is written all the time (target >= 0.9)
# At the end the "both" logger's count of the ISO requests is checked against
# its plain log: speed is worthless if lines were lost.
#
# Usage: scripts/bench-apache.sh [PATH-TO-dlcount-pipe]  (default target/release/dlcount-pipe)
# Environment: ROUNDS (5), DURATION seconds per run (10), THREADS (2),
# CONNECTIONS (32). Runtime is about 8 x ROUNDS x DURATION seconds plus setup.
# On a machine with few cores, wrk, Apache and the logger share them and
# every ratio drops, the floor's too: read dlcount/plain next to floor/plain.
# Run as root on Debian/Ubuntu (apt-installs apache2 and wrk when missing).
# Numbers belong in the issue note, not in a test: they depend on the machine.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"

BIN_SRC=$(pa_binary "${1:-}")
[ -x "$BIN_SRC" ] || pa_die "no executable dlcount-pipe at $BIN_SRC (build it: cargo build --release)"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}

pa_require_tools apache2:/usr/sbin/apache2 wrk:wrk curl:curl python3:python3

# The four instances (see the header); each lives in $T/NAME.
INSTANCES="base floor dlcount both"

T=$(mktemp -d /tmp/dlcount-bench.XXXXXX)
chmod 0755 "$T"
cleanup() {
    local rc=$? inst pid
    set +e
    for inst in $INSTANCES; do
        if [ -f "$T/$inst/port" ]; then
            pa_select "$T/$inst"
            pa_stop
        fi
    done
    for pid in $(pa_pids_with "$T/dlcount.toml") $(pa_pids_with "$T/both.toml"); do
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WWW=$T/www
mkdir -p "$WWW/isos" "$T/state" "$T/bin"
for inst in $INSTANCES; do mkdir -p "$T/$inst"; done
cp "$BIN_SRC" "$T/bin/dlcount-pipe"
BIN=$T/bin/dlcount-pipe
head -c 1024 /dev/urandom >"$WWW/small.bin"
truncate -s 3G "$WWW/isos/linuxvillage-24.04-desktop-amd64.iso"
chmod -R a+rX "$WWW"
# Each dlcount instance has its own database (the check below reads "both").
for inst in dlcount both; do
    cat >"$T/$inst.toml" <<EOF
db = "$T/state/$inst.sqlite"
root = "$WWW"
format = "combined"
ext = [".iso"]
EOF
    pa_install_dlcount_conf "$REPO/apache-conf/dlcount.conf" "$T/$inst.conf" "$BIN" "$T/$inst.toml" "$WWW"
done

# Same local time for both instances and for the report below.
TZ=$(pa_noon_tz)
export TZ

# Every instance may serve the tree (as Debian's apache2.conf grants /var/www;
# lib.sh denies everything else, and an instance answering 403 would make a
# meaningless baseline).
cat >"$T/grant.conf" <<EOF
<Directory "$WWW">
    Require all granted
</Directory>
EOF
PA_DIR=$T/base
pa_setup "$(pa_free_port)" "$WWW" "$T/grant.conf"
pa_start
# The same LogFormat and GlobalLog as dlcount.conf, the program swapped for cat.
sed -n -e '/^LogFormat /p' -e 's#^GlobalLog "|[^"]*"#GlobalLog "|/bin/cat"#p' \
    "$REPO/apache-conf/dlcount.conf" >"$T/floor.conf"
PA_DIR=$T/floor
PA_NO_PLAIN_LOG=1 pa_setup "$(pa_free_port)" "$WWW" "$T/grant.conf" "$T/floor.conf"
pa_start
PA_DIR=$T/dlcount
PA_NO_PLAIN_LOG=1 pa_setup "$(pa_free_port)" "$WWW" "$T/grant.conf" "$T/dlcount.conf"
pa_start
PA_DIR=$T/both
pa_setup "$(pa_free_port)" "$WWW" "$T/grant.conf" "$T/both.conf"
pa_start

ISO_PATH=/isos/linuxvillage-24.04-desktop-amd64.iso

# Each instance must answer exactly as a site would: 200 for the small file,
# 206 for the ranged ISO request. Anything else (403, 404) costs Apache far
# less than sending a file and would void the comparison.
for inst in $INSTANCES; do
    pa_select "$T/$inst"
    got="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PA_PORT/small.bin") $(
        curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=0-1023' "http://127.0.0.1:$PA_PORT$ISO_PATH")"
    [ "$got" = "200 206" ] || pa_die "instance $inst answers $got, not 200 206 (see $PA_ERRLOG)"
done

# run_wrk INSTANCE CASE prints requests/s of one wrk run; a run with any
# non-2xx answer is an error.
run_wrk() {
    local args=() out
    pa_select "$T/$1"
    case $2 in
        small) args=("http://127.0.0.1:$PA_PORT/small.bin") ;;
        iso) args=(-H 'Range: bytes=0-1023' "http://127.0.0.1:$PA_PORT$ISO_PATH") ;;
    esac
    out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "${args[@]}")
    if grep -q 'Non-2xx' <<<"$out"; then
        pa_die "wrk saw errors from instance $1 ($2): $(grep 'Non-2xx' <<<"$out")"
    fi
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Warm up all (page cache, worker threads, the loggers' first render).
for inst in $INSTANCES; do
    pa_select "$T/$inst"
    timeout 30 wrk -t1 -c4 -d2s "http://127.0.0.1:$PA_PORT/small.bin" >/dev/null
done

printf '# %s rounds x %s s, wrk -t%s -c%s, %s cores\n' "$ROUNDS" "$DURATION" "$THREADS" "$CONNECTIONS" "$(nproc)"
for r in $(seq 1 "$ROUNDS"); do
    # Rotate which instance goes first, so that drift (other load on the
    # machine, thermal state) does not favour one of them.
    case $((r % 4)) in
        1) order="base floor dlcount both" ;;
        2) order="dlcount both base floor" ;;
        3) order="floor dlcount both base" ;;
        0) order="both base floor dlcount" ;;
    esac
    for c in small iso; do
        for inst in $order; do
            rps=$(run_wrk "$inst" "$c")
            [ -n "$rps" ] || pa_die "wrk printed no Requests/sec ($inst $c)"
            printf '%s\n' "$rps" >>"$T/$c.$inst"
            printf '# round %s %-5s %-7s %12s req/s\n' "$r" "$c" "$inst" "$rps"
        done
    done
done

# Peak memory of the loggers (the current ones: no restart happened).
peak_kb=0
for pid in $(pa_pids_with "$T/dlcount.toml") $(pa_pids_with "$T/both.toml"); do
    kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${kb:-0}" -gt "$peak_kb" ] && peak_kb=$kb
done

printf '\n%-6s %9s %9s %9s %9s %13s %11s %13s %10s %6s\n' case "plain/s" "floor/s" "dlcount/s" \
    "both/s" "dlcount/plain" "floor/plain" "dlcount/floor" "both/plain" target
status=0
for c in small iso; do
    b=$(median <"$T/$c.base")
    f=$(median <"$T/$c.floor")
    d=$(median <"$T/$c.dlcount")
    w=$(median <"$T/$c.both")
    target=0.97
    [ "$c" = iso ] && target=0.9
    ratio=$(awk -v b="$b" -v d="$d" 'BEGIN { printf "%.3f", d / b }')
    floor_ratio=$(awk -v b="$b" -v f="$f" 'BEGIN { printf "%.3f", f / b }')
    own_ratio=$(awk -v f="$f" -v d="$d" 'BEGIN { printf "%.3f", d / f }')
    both_ratio=$(awk -v b="$b" -v w="$w" 'BEGIN { printf "%.3f", w / b }')
    verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r >= t ? "met" : "MISSED") }')
    printf '%-6s %9.0f %9.0f %9.0f %9.0f %13s %11s %13s %10s %6s %s\n' \
        "$c" "$b" "$f" "$d" "$w" "$ratio" "$floor_ratio" "$own_ratio" "$both_ratio" "$target" "$verdict"
done
printf 'logger peak RSS: %s KiB\n' "$peak_kb"

# Nothing lost under load: stop the "both" instance (its loggers drain the
# pipe and exit), then compare the logger's request count for the ISO with
# the 206 lines Apache wrote to its own plain log.
pa_select "$T/dlcount"
pa_stop
pa_select "$T/both"
pa_stop
pa_wait_no_pids_with "$T/both.toml" 30 || pa_log "logger still running 30 s after stop"
want=$(grep -c " $ISO_PATH HTTP/1.1\" 206 " "$PA_ACCESSLOG" || true)
got=$(timeout 120 "$BIN" report --db "$T/state/both.sqlite" --json --detail \
    | python3 -c 'import json, sys
d = json.load(sys.stdin).get(sys.argv[1], {})
print(sum(m["requests"] for m in d.values()))' "$ISO_PATH" || echo "report failed")
if [ "$got" = "$want" ]; then
    printf 'counted ISO requests: %s of %s (none lost)\n' "$got" "$want"
else
    printf 'counted ISO requests: %s, plain log has %s: LINES LOST\n' "$got" "$want"
    status=1
fi
for errlog in "$T/dlcount/logs/error.log" "$T/both/logs/error.log"; do
    if grep -q -e AH00106 -e 'Broken pipe' "$errlog"; then
        printf 'apache error log %s reports a dying logger:\n' "$errlog"
        grep -e AH00106 -e 'Broken pipe' "$errlog" | head -n 5
        status=1
    fi
done
[ "$status" -eq 0 ]
