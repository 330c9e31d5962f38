#!/usr/bin/env bash
# scripts/bench.sh — reproducible throughput and memory benchmark of dlcount-pipe.
#
# Generates seeded logs with the genlog example (its expected answers come
# from the generator, not from any parser), then times, with GNU time and the
# median of BENCH_RUNS runs:
#   grep -c '' (scanning floor), pipe mode (mixed, all-new, 10x for flat
#   memory), import of the plain and .gz log beside zcat, the old Python
#   script and goaccess (if installed); the live sources beside the
#   pipe: `listen` counting the mixed log sent as nginx's syslog datagrams
#   by the dgramsend example (blocking Unix socket: nothing lost, the
#   listener's own pace; timed from the first datagram to the listener's
#   exit after SIGTERM), `follow` reading the mixed log as a file (timed from
#   its start to the commit of its checkpoint at the file's end), and, once
#   each, an nginx-like sender (non-blocking: a line that finds the queue
#   full is dropped) at BENCH_PACED_RATE lines/s to a Unix socket and over
#   UDP on loopback, with how many lines were lost;
#   with PostgreSQL installed, the same pipe (mixed, all-new) and import runs
#   into a private local PostgreSQL (tests/e2e/pg.sh, PostgreSQL's default
#   durability settings), side by side with SQLite's;
#   with BASELINE_BIN, SQLite's pipe (mixed, all-new) and import with that
#   older binary too, its runs alternating with DLCOUNT_BIN's.
# Every dlcount run is checked: `report --json` and `report --json --detail`
# must equal the generator's answers (OK/MISMATCH). Exits 1 on any MISMATCH or failed run; with
# BENCH_STRICT=1 also on any missed target.
#
# Environment:
#   BENCH_LINES  lines of the mixed and all-new logs   (default 1000000)
#   BENCH_BIG    1: also a 10x mixed log (flat memory)  (default 1)
#   BENCH_RUNS   runs per measurement, median reported  (default 3)
#   BENCH_SEED   generator seed                         (default 1)
#   BENCH_DIR    work directory, kept and reused (logs are regenerated only
#                when their parameters change); default: a temp dir, removed
#   BENCH_STRICT 1: exit 1 when a target is missed      (default 0)
#   BENCH_FORCE  1: measure even if the probe run gives a wrong answer
#   BENCH_LIVE   1: also measure listen and follow      (default 1)
#   BENCH_PACED_RATE  lines/s of the nginx-like sender (default 50000)
#   DLCOUNT_BIN  binary to measure (default: the release build of this tree)
#   BENCH_PG     1: also into PostgreSQL; 0: not (default: 1 when a PostgreSQL
#                server is installed, /usr/lib/postgresql/*/bin/initdb)
#   BENCH_GEOIP  a .mmdb file: DLCOUNT_BIN's SQLite pipe runs look countries
#                up in it (--geoip; the baseline runs without: the cost of
#                the lookups is part of the comparison); default: none
#   BASELINE_BIN an older dlcount-pipe to compare SQLite's figures with, in
#                the same run (acceptance: DLCOUNT_BIN's median time at most
#                5 % above the baseline's); default: none
set -euo pipefail
export LC_ALL=C # '.' decimals for awk/sort, bytewise sorting

BENCH_LINES=${BENCH_LINES:-1000000}
BENCH_BIG=${BENCH_BIG:-1}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_STRICT=${BENCH_STRICT:-0}
BENCH_FORCE=${BENCH_FORCE:-0}
BENCH_LIVE=${BENCH_LIVE:-1}
BENCH_PACED_RATE=${BENCH_PACED_RATE:-50000}
if [ -z "${BENCH_PG:-}" ]; then
    BENCH_PG=0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && BENCH_PG=1
fi
BASELINE_BIN=${BASELINE_BIN:-}
BENCH_GEOIP=${BENCH_GEOIP:-}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${DLCOUNT_BIN:-$TARGET_DIR/release/dlcount-pipe}
GEN=$TARGET_DIR/release/examples/genlog
SEND=$TARGET_DIR/release/examples/dgramsend
OLD=$REPO/scripts/oldscript_baseline.py

die() {
    echo "bench.sh: $*" >&2
    exit 2
}

# --- prerequisites -----------------------------------------------------------
[ -x /usr/bin/time ] || die "GNU time is required for peak memory: apt-get install time"
for tool in cargo python3 gzip zcat grep; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done

if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
    WORK=$(cd "$BENCH_DIR" && pwd)
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/dlcount-bench.XXXXXX")
    REMOVE_WORK=1
fi
PG_WORK=""
cleanup() {
    if [ -n "$PG_WORK" ]; then
        pg_cleanup || true
        rm -rf "$PG_WORK"
    fi
    if [ "${REMOVE_WORK:-0}" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== machine"
echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') (nproc $(nproc))"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel: $(uname -sr); $(rustc --version)"
echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (dirty)')"
echo "params: BENCH_LINES=$BENCH_LINES BENCH_BIG=$BENCH_BIG BENCH_RUNS=$BENCH_RUNS BENCH_SEED=$BENCH_SEED"
echo "work:   $WORK"
if [ -n "$BASELINE_BIN" ]; then
    [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN=$BASELINE_BIN is not executable"
    BASELINE_BIN=$(cd "$(dirname "$BASELINE_BIN")" && pwd)/$(basename "$BASELINE_BIN")
    echo "baseline: $BASELINE_BIN (sha256 $(sha256sum "$BASELINE_BIN" | cut -c1-16))"
fi

echo "== build"
cargo build --release --bins --examples --quiet
[ -x "$GEN" ] || die "$GEN was not built (the genlog example)"
[ -x "$BIN" ] || die "$BIN is missing: dlcount-pipe (src/main.rs) must build in release mode"

# --- logs --------------------------------------------------------------------
# gen NAME MODE LINES: NAME.log and NAME.plain.json, reused when unchanged.
gen() {
    local name=$1 mode=$2 lines=$3
    local stamp
    stamp="$mode $lines $BENCH_SEED $(sha256sum "$REPO/tests/support/genlog.rs" | cut -c1-16)"
    if [ -s "$WORK/$name.log" ] && [ "$(cat "$WORK/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "$name.log: reused"
        return
    fi
    rm -f "$WORK/$name.stamp"
    "$GEN" --mode "$mode" --lines "$lines" --seed "$BENCH_SEED" \
        --out "$WORK/$name.log" --answer "$WORK/$name.detail.json" \
        --answer-plain "$WORK/$name.plain.json" 2>&1 | sed "s/^/$name.log: /"
    echo "$stamp" >"$WORK/$name.stamp"
}

echo "== logs"
gen mixed mixed "$BENCH_LINES"
gen allnew all-new "$BENCH_LINES"
if [ "$BENCH_BIG" = 1 ]; then
    gen big mixed $((BENCH_LINES * 10))
fi
if [ ! -s "$WORK/mixed.log.gz" ] || [ "$WORK/mixed.log.gz" -ot "$WORK/mixed.log" ]; then
    rm -f "$WORK/mixed.log.gz"
    gzip -k "$WORK/mixed.log"
fi
# Sanity probe: the generator's fixed edge-case catalogue alone (--lines 0).
"$GEN" --lines 0 --out "$WORK/probe.log" --answer "$WORK/probe.detail.json" \
    --answer-plain "$WORK/probe.plain.json" 2>/dev/null

# --- PostgreSQL ----------------------------------------------------------------
# A private cluster on 127.0.0.1 (TCP, SCRAM, no TLS), started once; every
# measured run gets a fresh database. Unlike the tests' throwaway cluster it
# runs PostgreSQL's defaults where they matter for a write benchmark: fsync,
# synchronous_commit and full_page_writes on, shared_buffers 128MB.
if [ "$BENCH_PG" = 1 ]; then
    # shellcheck source=tests/e2e/pg.sh
    . "$REPO/tests/e2e/pg.sh"
    # Its own directory under /tmp: as root the cluster runs as postgres,
    # which must reach it.
    PG_WORK=$(mktemp -d /tmp/dlcount-bench-pg.XXXXXX)
    chmod 755 "$PG_WORK"
    echo "== PostgreSQL"
    PG_TLS=0 pg_start "$PG_WORK/pg" || die "could not start a private PostgreSQL (BENCH_PG=0 to skip it)"
    for setting in "fsync = on" "synchronous_commit = on" "full_page_writes = on" "shared_buffers = '128MB'"; do
        pg_psql "ALTER SYSTEM SET $setting" >/dev/null || die "ALTER SYSTEM SET $setting failed"
    done
    { pg_stop && pg_start_again "$PG_DIR"; } || die "could not restart the private PostgreSQL"
    echo "PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on 127.0.0.1:$PG_PORT, cluster in $PG_DIR ($(pg_psql "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers')"))"
fi

# --- measurement helpers -----------------------------------------------------
FAILED=0
MISSED=0
declare -A SECS RSS LINES CHECK
ROWS=()

# Line counts come from the files themselves (mixed mode overshoots slightly).
count_lines() { grep -c '' "$1"; }

# json_equal A B: same JSON value (key order and formatting ignored).
json_equal() {
    python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$1" "$2" 2>/dev/null
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
maxof() { sort -g | tail -n 1; }

now() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "$EPOCHREALTIME"; else date +%s.%N; fi; }

# run_timed KEY STDIN_FILE CMD...: one run, stdin piped through cat when
# STDIN_FILE is not "-"; appends "seconds kib" to $WORK/KEY.times. Peak RSS
# is GNU time's %M of CMD; seconds are wall time of the whole pipeline taken
# with microsecond resolution (time's %e has only centiseconds).
run_timed() {
    local key=$1 input=$2
    shift 2
    local out="$WORK/$key.out" err="$WORK/$key.err" tf="$WORK/$key.time"
    local rc=0 t0 t1
    t0=$(now)
    if [ "$input" = - ]; then
        /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$out" 2>"$err" </dev/null || rc=$?
    else
        # A real pipe, as from Apache (not a seekable file on stdin).
        # shellcheck disable=SC2002
        cat "$input" | /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$out" 2>"$err" || rc=$?
    fi
    t1=$(now)
    if [ "$rc" -ne 0 ]; then
        echo "  FAILED (exit $rc): $*" >&2
        tail -n 5 "$err" | sed 's/^/    /' >&2
        FAILED=1
        return 1
    fi
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }') $(tail -n 1 "$tf" | cut -d' ' -f2)" >>"$WORK/$key.times"
}

# check KEY DB ANSWER [BINARY]: `report --json` must equal the generator's plain
# answer (ANSWER, NAME.plain.json) and `report --json --detail` its detail
# answer (NAME.detail.json). Prints OK or MISMATCH(plain|detail).
check() {
    local key=$1 db=$2 answer=$3 bin=${4:-$BIN}
    if ! "$bin" report --db "$db" --json >"$WORK/$key.report.json" 2>"$WORK/$key.report.err" ||
        ! json_equal "$WORK/$key.report.json" "$answer"; then
        echo "MISMATCH(plain)"
    elif ! "$bin" report --db "$db" --json --detail >"$WORK/$key.report-detail.json" 2>>"$WORK/$key.report.err" ||
        ! json_equal "$WORK/$key.report-detail.json" "${answer%.plain.json}.detail.json"; then
        echo "MISMATCH(detail)"
    else
        echo OK
    fi
}

# measure KEY RUNS INPUT CMD...: median seconds, max peak RSS over RUNS runs.
measure() {
    local key=$1 runs=$2 input=$3
    shift 3
    rm -f "$WORK/$key.times"
    local i
    for ((i = 1; i <= runs; i++)); do
        run_timed "$key" "$input" "$@" || return 0
    done
    SECS[$key]=$(cut -d' ' -f1 "$WORK/$key.times" | median)
    RSS[$key]=$(cut -d' ' -f2 "$WORK/$key.times" | maxof)
}

# fresh_db BACKEND: empties the work directories and prints the --db of an
# empty database: an SQLite file, or the private PostgreSQL's database
# dropped and created again.
fresh_db() {
    rm -rf "$WORK/db" "$WORK/root" "$WORK/state"
    mkdir -p "$WORK/db" "$WORK/root" "$WORK/state"
    if [ "$1" = pg ]; then
        pg_psql "DROP DATABASE IF EXISTS $PG_DATABASE WITH (FORCE)" postgres >/dev/null &&
            pg_psql "CREATE DATABASE $PG_DATABASE" postgres >/dev/null || return 1
        echo "$PG_URL"
    else
        echo "$WORK/db/x.sqlite"
    fi
}

# measure_dl KEY MODE LOG ANSWER [BACKEND]: dlcount runs on a fresh database
# each time, every run checked. MODE is "pipe" or "import", BACKEND "sqlite"
# (default) or "pg". For SQLite with BASELINE_BIN set, each run of
# DLCOUNT_BIN is paired with one of the baseline (KEY_base), in alternating
# order, so that both see the same machine.
measure_dl() {
    local key=$1 mode=$2 log=$3 answer=$4 backend=${5:-sqlite}
    local -a keys=("$key") bins=("$BIN")
    if [ "$backend" = sqlite ] && [ -n "$BASELINE_BIN" ]; then
        keys+=("${key}_base")
        bins+=("$BASELINE_BIN")
    fi
    local i j k verdict db
    local -A all=()
    for k in "${keys[@]}"; do
        rm -f "$WORK/$k.times"
        all[$k]=OK
    done
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        for j in "${!keys[@]}"; do
            # Alternate which binary goes first.
            [ $((i % 2)) = 1 ] || j=$((${#keys[@]} - 1 - j))
            k=${keys[$j]}
            [ "${all[$k]}" != FAILED ] || continue
            db=$(fresh_db "$backend") || { all[$k]=FAILED; continue; }
            if [ "$mode" = pipe ] && [ "$backend" = pg ]; then
                run_timed "$k" "$log" "${bins[$j]}" --db "$db" --state-dir "$WORK/state" --root "$WORK/root" ||
                    { all[$k]=FAILED; continue; }
            elif [ "$mode" = pipe ]; then
                local -a geo=()
                [ -z "$BENCH_GEOIP" ] || [ "${bins[$j]}" != "$BIN" ] || geo=(--geoip "$BENCH_GEOIP")
                run_timed "$k" "$log" "${bins[$j]}" --db "$db" --root "$WORK/root" "${geo[@]}" ||
                    { all[$k]=FAILED; continue; }
            elif [ "$backend" = pg ]; then
                run_timed "$k" - "${bins[$j]}" import --db "$db" --state-dir "$WORK/state" "$log" ||
                    { all[$k]=FAILED; continue; }
            else
                run_timed "$k" - "${bins[$j]}" import --db "$db" "$log" || { all[$k]=FAILED; continue; }
            fi
            verdict=$(check "$k" "$db" "$answer" "${bins[$j]}")
            [ "$verdict" = OK ] || all[$k]=$verdict
        done
    done
    for k in "${keys[@]}"; do
        CHECK[$k]=${all[$k]}
        [ "${all[$k]}" = OK ] || FAILED=1
        if [ -s "$WORK/$k.times" ]; then
            SECS[$k]=$(cut -d' ' -f1 "$WORK/$k.times" | median)
            RSS[$k]=$(cut -d' ' -f2 "$WORK/$k.times" | maxof)
        fi
    done
    return 0
}

# --- live sources ------------------------------------------------------------
# A background dlcount under GNU time: the dlcount process is time's child.
child_of() {
    local _
    for _ in $(seq 1 100); do
        pgrep -P "$1" && return 0
        sleep 0.01
    done
    return 1
}

# measure_listen KEY LOG ANSWER: `listen` on a Unix socket, LOG sent by
# dgramsend (blocking: the kernel makes it wait while the socket's queue is
# full, so nothing is lost); seconds from the first datagram to the
# listener's exit after SIGTERM (what it held is committed by then).
measure_listen() {
    local key=$1 log=$2 answer=$3 i verdict all=OK db sock tp lp t0 t1 sent
    rm -f "$WORK/$key.times"
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        rm -rf "$WORK/db" "$WORK/root" "$WORK/listen.sock"
        mkdir -p "$WORK/db" "$WORK/root"
        db="$WORK/db/x.sqlite"
        sock="$WORK/listen.sock"
        /usr/bin/time -f '%e %M' -o "$WORK/$key.time" "$BIN" listen --db "$db" --root "$WORK/root" \
            --socket "$sock" 2>"$WORK/$key.err" &
        tp=$!
        lp=$(child_of "$tp") || { all=FAILED; break; }
        while [ ! -S "$sock" ]; do sleep 0.01; done
        t0=$(now)
        sent=$("$SEND" --socket "$sock" "$log") || { all=FAILED; break; }
        kill -TERM "$lp"
        wait "$tp" || { all=FAILED; break; }
        t1=$(now)
        echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }') $(cut -d' ' -f2 "$WORK/$key.time")" >>"$WORK/$key.times"
        verdict=$(check "$key" "$db" "$answer")
        case $sent in "sent $(count_lines "$log") dropped 0 "*) ;; *) verdict="LOST($sent)" ;; esac
        [ "$verdict" = OK ] || all=$verdict
    done
    CHECK[$key]=$all
    [ "$all" = OK ] || FAILED=1
    if [ -s "$WORK/$key.times" ]; then
        SECS[$key]=$(cut -d' ' -f1 "$WORK/$key.times" | median)
        RSS[$key]=$(cut -d' ' -f2 "$WORK/$key.times" | maxof)
    fi
    return 0
}

# measure_follow KEY LOG ANSWER: `follow LOG` on a fresh database; seconds
# from its start until its checkpoint, committed with the counts, reaches the
# end of LOG (read from the database by a small poller), then SIGTERM.
measure_follow() {
    local key=$1 log=$2 answer=$3 i verdict all=OK db tp fp t0 done_at abs
    abs=$(cd "$(dirname "$log")" && pwd)/$(basename "$log")
    rm -f "$WORK/$key.times"
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        rm -rf "$WORK/db" "$WORK/root"
        mkdir -p "$WORK/db" "$WORK/root"
        db="$WORK/db/x.sqlite"
        t0=$(now)
        /usr/bin/time -f '%e %M' -o "$WORK/$key.time" "$BIN" follow --db "$db" --root "$WORK/root" \
            "$abs" 2>"$WORK/$key.err" &
        tp=$!
        fp=$(child_of "$tp") || { all=FAILED; break; }
        done_at=$(python3 - "$db" "follow:$abs" "$(stat -c %s "$abs")" "$t0" <<'PY'
import sqlite3, sys, time
db, name, size, t0 = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
conn = None
while time.time() - t0 < 600:
    try:
        if conn is None:
            conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=1)
        row = conn.execute("SELECT CAST(value AS TEXT) FROM meta WHERE name = ?", (name,)).fetchone()
        # "1 SOURCE DEV:INO:OFFSET:LEN:FP ...": the file at the path comes last.
        if row and int(row[0].split()[-1].split(":")[2]) == size:
            print("%.4f" % (time.time() - t0))
            break
    except sqlite3.Error:
        conn = None
    time.sleep(0.005)
PY
        )
        kill -TERM "$fp"
        wait "$tp" || { all=FAILED; break; }
        [ -n "$done_at" ] || { all=FAILED; break; }
        echo "$done_at $(cut -d' ' -f2 "$WORK/$key.time")" >>"$WORK/$key.times"
        verdict=$(check "$key" "$db" "$answer")
        [ "$verdict" = OK ] || all=$verdict
    done
    CHECK[$key]=$all
    [ "$all" = OK ] || FAILED=1
    if [ -s "$WORK/$key.times" ]; then
        SECS[$key]=$(cut -d' ' -f1 "$WORK/$key.times" | median)
        RSS[$key]=$(cut -d' ' -f2 "$WORK/$key.times" | maxof)
    fi
    return 0
}

# paced_loss socket|udp LOG: one run of an nginx-like sender (non-blocking,
# BENCH_PACED_RATE lines/s) into `listen`; prints the lines lost: dropped by
# the sender (the Unix socket's queue was full) or by the kernel (UDP's
# receive buffer overflowed: sent but never received).
paced_loss() {
    local kind=$1 log=$2 tp lp to port out received total
    rm -rf "$WORK/db" "$WORK/root" "$WORK/listen.sock"
    mkdir -p "$WORK/db" "$WORK/root"
    if [ "$kind" = socket ]; then
        to=(--socket "$WORK/listen.sock")
    else
        port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        to=(--udp "$port")
    fi
    "$BIN" listen --db "$WORK/db/x.sqlite" --root "$WORK/root" "${to[@]}" 2>"$WORK/paced.err" &
    lp=$!
    sleep 0.5
    [ "$kind" = socket ] || to=(--udp "127.0.0.1:$port")
    out=$("$SEND" "${to[@]}" --nonblocking --rate "$BENCH_PACED_RATE" "$log")
    sleep 0.5
    kill -TERM "$lp"
    wait "$lp" || true
    received=$(sed -n 's/.*: \([0-9]*\) lines, .*exiting$/\1/p' "$WORK/paced.err" | tail -n 1)
    total=$(count_lines "$log")
    awk -v t="$total" -v r="${received:-0}" -v o="$out" 'BEGIN {
        printf "%d of %d lines lost (%.2f%%; sender: %s)", t - r, t, 100 * (t - r) / t, o }'
}

# --- sanity probe ------------------------------------------------------------
echo "== probe: the generator's edge-case catalogue through pipe mode"
rm -rf "$WORK/db" "$WORK/root"
mkdir -p "$WORK/db" "$WORK/root"
if "$BIN" --db "$WORK/db/x.sqlite" --root "$WORK/root" <"$WORK/probe.log" 2>"$WORK/probe.err"; then
    probe=$(check probe "$WORK/db/x.sqlite" "$WORK/probe.plain.json")
    [ "$probe" = OK ] || FAILED=1
else
    probe="FAILED (exit $?; see $WORK/probe.err)"
    FAILED=1
fi
echo "probe: $probe"
if [ "$probe" != OK ]; then
    echo "  $BIN does not give the expected report on the catalogue log" >&2
    echo "  expected: $(tr -d ' \n' <"$WORK/probe.plain.json" | cut -c1-160)..." >&2
    echo "  got:      $(tr -d ' \n' <"$WORK/probe.report.json" 2>/dev/null | cut -c1-160)..." >&2
    echo "  stderr:   $(tail -q -n 3 "$WORK/probe.err" "$WORK/probe.report.err" 2>/dev/null | tr '\n' ' ' | cut -c1-300)" >&2
    [ "$BENCH_FORCE" = 1 ] || die "refusing to benchmark a binary that counts wrong (BENCH_FORCE=1 to measure anyway)"
fi

# --- measurements ------------------------------------------------------------
echo "== measuring (median of $BENCH_RUNS runs)"
LINES[mixed]=$(count_lines "$WORK/mixed.log")
LINES[allnew]=$(count_lines "$WORK/allnew.log")
LINES[big]=0
[ "$BENCH_BIG" = 1 ] && LINES[big]=$(count_lines "$WORK/big.log")

measure grep "$BENCH_RUNS" - grep -c '' "$WORK/mixed.log"
measure grep_allnew "$BENCH_RUNS" - grep -c '' "$WORK/allnew.log"
measure zcat "$BENCH_RUNS" - zcat "$WORK/mixed.log.gz"
measure_dl pipe pipe "$WORK/mixed.log" "$WORK/mixed.plain.json"
measure_dl pipe_allnew pipe "$WORK/allnew.log" "$WORK/allnew.plain.json"
if [ "$BENCH_BIG" = 1 ]; then
    measure grep_big "$BENCH_RUNS" - grep -c '' "$WORK/big.log"
    measure_dl pipe_big pipe "$WORK/big.log" "$WORK/big.plain.json"
fi
measure_dl import import "$WORK/mixed.log" "$WORK/mixed.plain.json"
measure_dl import_gz import "$WORK/mixed.log.gz" "$WORK/mixed.plain.json"
if [ "$BENCH_LIVE" = 1 ]; then
    measure_listen listen "$WORK/mixed.log" "$WORK/mixed.plain.json"
    measure_follow follow "$WORK/mixed.log" "$WORK/mixed.plain.json"
    head -n 200000 "$WORK/mixed.log" >"$WORK/paced.log"
    QLEN_NOW=$(cat /proc/sys/net/unix/max_dgram_qlen 2>/dev/null || echo '?')
    PACED_UNIX=$(paced_loss socket "$WORK/paced.log")
    PACED_UDP=$(paced_loss udp "$WORK/paced.log")
    # Once more with the queue install.sh --nginx sets
    # (scripts/nginx/60-dlcount-unix-queue.conf), where this run may set it
    # (root); the machine's value is put back at once.
    QLEN_INSTALLED=$(sed -n 's/^net.unix.max_dgram_qlen *= *//p' scripts/nginx/60-dlcount-unix-queue.conf)
    PACED_UNIX_INSTALLED=
    if [ "$QLEN_NOW" != "$QLEN_INSTALLED" ] && [ -w /proc/sys/net/unix/max_dgram_qlen ] &&
        echo "$QLEN_INSTALLED" >/proc/sys/net/unix/max_dgram_qlen 2>/dev/null; then
        PACED_UNIX_INSTALLED=$(paced_loss socket "$WORK/paced.log")
        echo "$QLEN_NOW" >/proc/sys/net/unix/max_dgram_qlen
    fi
fi
if [ "$BENCH_PG" = 1 ]; then
    measure_dl pg_pipe pipe "$WORK/mixed.log" "$WORK/mixed.plain.json" pg
    measure_dl pg_pipe_allnew pipe "$WORK/allnew.log" "$WORK/allnew.plain.json" pg
    measure_dl pg_import import "$WORK/mixed.log" "$WORK/mixed.plain.json" pg
fi
measure python "$BENCH_RUNS" - python3 "$OLD" "$WORK/mixed.log"
if json_equal "$WORK/python.out" "$WORK/mixed.plain.json"; then
    PY_AGREES="equals the generator's answer"
else
    PY_AGREES="differs from the generator's answer (old-script quirks: '//' kept by normpath, \\xhh and absolute-form targets not undone)"
fi
if command -v goaccess >/dev/null; then
    # One run: goaccess is slow and is context, not a target.
    measure goaccess 1 - goaccess "$WORK/mixed.log" --log-format=COMBINED --no-progress -o "$WORK/report.html"
fi

# --- table -------------------------------------------------------------------
# fmt helpers (awk for floating point).
lps() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "inf" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# row NAME KEY LINES BASEKEY BASENAME TARGET VERDICT
row() {
    local name=$1 key=$2 n=$3 base=$4 bname=$5 target=$6 verdict=$7
    local s=${SECS[$key]:-} r=${RSS[$key]:-}
    if [ -z "$s" ]; then
        ROWS+=("$(printf '%-22s %9s %12s %9s %-18s %-34s %s' "$name" - - - - "$target" "${verdict:-FAILED}")")
        return
    fi
    local vs=-
    if [ -n "$base" ] && [ -n "${SECS[$base]:-}" ]; then
        vs="$(ratio "$s" "${SECS[$base]}")x $bname"
    fi
    ROWS+=("$(printf '%-22s %9.3f %12s %9s %-18s %-34s %s' "$name" "$s" "$(lps "$n" "$s")" "$(mib "$r")" "$vs" "$target" "$verdict")")
}

has() { [ -n "${SECS[$1]:-}" ]; }
rss_ok() { le "$(mib "${RSS[$1]}")" 64; }
pass_if() { if "$@"; then echo PASS; else echo MISS; fi; }

c_pipe() { ge "$(lps "${LINES[mixed]}" "${SECS[pipe]}")" 1000000 && rss_ok pipe; }
c_allnew() { ge "$(lps "${LINES[allnew]}" "${SECS[pipe_allnew]}")" 200000 && rss_ok pipe_allnew; }
# Flat memory: the 10x run may use at most 25% (or 8 MiB) more than the 1x run.
flat_limit=0
has pipe && flat_limit=$(awk -v k="${RSS[pipe]}" 'BEGIN { a = k * 1.25; b = k + 8192; printf "%d", (a > b ? a : b) }')
c_big() { has pipe && le "${RSS[pipe_big]}" "$flat_limit" && rss_ok pipe_big; }
c_import() {
    ge "$(lps "${LINES[mixed]}" "${SECS[import]}")" 2000000 && has python &&
        ge "$(ratio "${SECS[python]}" "${SECS[import]}")" 5 && rss_ok import
}
c_gz() { has zcat && le "$(ratio "${SECS[import_gz]}" "${SECS[zcat]}")" 1.3 && rss_ok import_gz; }
c_listen() { ge "$(lps "${LINES[mixed]}" "${SECS[listen]}")" 200000 && rss_ok listen; }
c_follow() { ge "$(lps "${LINES[mixed]}" "${SECS[follow]}")" 1000000 && rss_ok follow; }
# PostgreSQL: committed lines/s.
c_pg_pipe() { ge "$(lps "${LINES[mixed]}" "${SECS[pg_pipe]}")" 200000; }
c_pg_allnew() { ge "$(lps "${LINES[allnew]}" "${SECS[pg_pipe_allnew]}")" 50000; }
c_pg_import() { ge "$(lps "${LINES[mixed]}" "${SECS[pg_import]}")" 200000; }
# The baseline: at most 5 % slower than the older binary (medians, same run).
c_base() { has "${1}_base" && le "$(ratio "${SECS[$1]}" "${SECS[${1}_base]}")" 1.05; }

v_pipe=FAILED v_allnew=FAILED v_big=FAILED v_import=FAILED v_gz=FAILED
has pipe && v_pipe=$(pass_if c_pipe)
has pipe_allnew && v_allnew=$(pass_if c_allnew)
has pipe_big && v_big=$(pass_if c_big)
has import && v_import=$(pass_if c_import)
has import_gz && v_gz=$(pass_if c_gz)
for v in "$v_pipe" "$v_allnew" "$v_import" "$v_gz"; do [ "$v" = PASS ] || MISSED=1; done
v_listen=FAILED v_follow=FAILED
if [ "$BENCH_LIVE" = 1 ]; then
    has listen && v_listen=$(pass_if c_listen)
    has follow && v_follow=$(pass_if c_follow)
    for v in "$v_listen" "$v_follow"; do [ "$v" = PASS ] || MISSED=1; done
fi
v_pg_pipe=FAILED v_pg_allnew=FAILED v_pg_import=FAILED
if [ "$BENCH_PG" = 1 ]; then
    has pg_pipe && v_pg_pipe=$(pass_if c_pg_pipe)
    has pg_pipe_allnew && v_pg_allnew=$(pass_if c_pg_allnew)
    has pg_import && v_pg_import=$(pass_if c_pg_import)
    for v in "$v_pg_pipe" "$v_pg_allnew" "$v_pg_import"; do [ "$v" = PASS ] || MISSED=1; done
fi
declare -A v_base=()
if [ -n "$BASELINE_BIN" ]; then
    for k in pipe pipe_allnew import; do
        v_base[$k]=FAILED
        has "$k" && has "${k}_base" && v_base[$k]=$(pass_if c_base "$k")
        [ "${v_base[$k]}" = PASS ] || MISSED=1
    done
fi
[ "$BENCH_BIG" = 1 ] && [ "$v_big" != PASS ] && MISSED=1

with_check() { echo "$1, answer ${CHECK[$2]:-FAILED}"; }

# base_row NAME KEY LINES: the baseline binary's figures for KEY, the time
# ratio this binary / baseline, and the ±5 % verdict.
base_row() {
    [ -n "$BASELINE_BIN" ] || return 0
    row "$1" "${2}_base" "$3" "" "" "" "answer ${CHECK[${2}_base]:-FAILED}"
    if has "$2" && has "${2}_base"; then
        ROWS+=("$(printf '%-22s %9s %12s %9s %-18s %-34s %s' "  this / baseline" "" "" "" \
            "$(ratio "${SECS[$2]}" "${SECS[${2}_base]}")x baseline" "<=1.05x baseline (±5 %)" "${v_base[$2]}")")
    fi
}
# pg_row NAME KEY LINES SQLITE-KEY TARGET VERDICT: PostgreSQL beside SQLite.
pg_row() {
    [ "$BENCH_PG" = 1 ] || return 0
    row "$1" "$2" "$3" "$4" sqlite "$5" "$(with_check "$6" "$2")"
}

row "grep -c (floor)" grep "${LINES[mixed]}" "" "" "" ""
row "pipe mixed" pipe "${LINES[mixed]}" grep grep ">=1,000,000 l/s, <=64 MiB" "$(with_check "$v_pipe" pipe)"
base_row "pipe mixed, baseline" pipe "${LINES[mixed]}"
pg_row "pg pipe mixed" pg_pipe "${LINES[mixed]}" pipe ">=200,000 l/s committed" "$v_pg_pipe"
row "grep -c all-new" grep_allnew "${LINES[allnew]}" "" "" "" ""
row "pipe all-new" pipe_allnew "${LINES[allnew]}" grep_allnew grep ">=200,000 l/s, <=64 MiB" "$(with_check "$v_allnew" pipe_allnew)"
base_row "pipe all-new, baseline" pipe_allnew "${LINES[allnew]}"
pg_row "pg pipe all-new" pg_pipe_allnew "${LINES[allnew]}" pipe_allnew ">=50,000 l/s committed" "$v_pg_allnew"
if [ "$BENCH_BIG" = 1 ]; then
    row "grep -c 10x" grep_big "${LINES[big]}" "" "" "" ""
    row "pipe mixed 10x" pipe_big "${LINES[big]}" grep_big grep "RSS flat: <=$(mib "$flat_limit") MiB" "$(with_check "$v_big" pipe_big)"
fi
if [ "$BENCH_LIVE" = 1 ]; then
    row "listen mixed (dgrams)" listen "${LINES[mixed]}" pipe pipe ">=200,000 l/s, none lost" "$(with_check "$v_listen" listen)"
    row "follow mixed (file)" follow "${LINES[mixed]}" pipe pipe ">=1,000,000 l/s" "$(with_check "$v_follow" follow)"
fi
row "python old script" python "${LINES[mixed]}" "" "" "" ""
row "import plain" import "${LINES[mixed]}" python python ">=2,000,000 l/s, <=0.2x python" "$(with_check "$v_import" import)"
base_row "import, baseline" import "${LINES[mixed]}"
pg_row "pg import plain" pg_import "${LINES[mixed]}" import ">=200,000 l/s" "$v_pg_import"
row "zcat (floor)" zcat "${LINES[mixed]}" "" "" "" ""
row "import .gz" import_gz "${LINES[mixed]}" zcat zcat "<=1.3x zcat" "$(with_check "$v_gz" import_gz)"
if has goaccess; then
    row "goaccess (1 run)" goaccess "${LINES[mixed]}" import "dlcount import" "" ""
else
    ROWS+=("$(printf '%-22s %s' "goaccess" "skipped (not installed)")")
fi

echo "== results (seconds: median of $BENCH_RUNS; RSS: max over runs; 'vs' = time / baseline time)"
printf '%-22s %9s %12s %9s %-18s %-34s %s\n' name seconds lines/s "RSS MiB" vs target result
for r in "${ROWS[@]}"; do echo "$r"; done
if has pipe && [ "$BENCH_BIG" = 1 ] && has pipe_big; then
    echo "memory: pipe 1x $(mib "${RSS[pipe]}") MiB, 10x $(mib "${RSS[pipe_big]}") MiB"
fi
has import && has python && echo "old Python script takes $(ratio "${SECS[python]}" "${SECS[import]}")x as long as import (target >=5)"
echo "python old script: $PY_AGREES"
echo "probe (catalogue): $probe"
if [ "$BENCH_LIVE" = 1 ]; then
    echo "nginx-like sender (non-blocking, $BENCH_PACED_RATE lines/s, 200,000 lines):"
    echo "  Unix socket (net.unix.max_dgram_qlen=$QLEN_NOW, this machine's): $PACED_UNIX"
    [ -z "$PACED_UNIX_INSTALLED" ] ||
        echo "  Unix socket (net.unix.max_dgram_qlen=$QLEN_INSTALLED, as install.sh --nginx sets it): $PACED_UNIX_INSTALLED"
    echo "  UDP on loopback: $PACED_UDP"
fi

if [ "$FAILED" = 1 ]; then
    if [ -n "${BENCH_DIR:-}" ]; then
        echo "bench.sh: some runs FAILED or gave a MISMATCH (outputs in $WORK)" >&2
    else
        echo "bench.sh: some runs FAILED or gave a MISMATCH (set BENCH_DIR to keep the outputs)" >&2
    fi
    exit 1
fi
if [ "$BENCH_STRICT" = 1 ] && [ "$MISSED" = 1 ]; then
    echo "bench.sh: targets missed (BENCH_STRICT=1)" >&2
    exit 1
fi
