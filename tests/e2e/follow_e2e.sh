#!/usr/bin/env bash
# End-to-end test of `dlcount-pipe follow` under real logrotate: a writer
# appends access lines at a steady rate (as a web server does: one open
# O_APPEND descriptor, reopened when told to), logrotate rotates the log with
# a test configuration — `create` (rename, new file, the writer reopens on
# SIGHUP in postrotate) and `copytruncate` (copy, then truncate in place) —
# with compress and delaycompress as Debian's configurations have, and
# follow is SIGKILLed and restarted twice in the middle, with a rotation of
# each kind happening while it is down. The report must equal the answer
# computed (by an independent parser) from every line the writer wrote.
#
# copytruncate's one unavoidable loss (README, "Following a log file"):
# lines written after logrotate's copy and before its truncation that
# follow had not read are in neither file. No follower can see them; the
# writer here does what avoids it — it does not write between the copy and
# the truncation (logrotate's prerotate/postrotate pause it) — while the
# lines written before the copy and not read yet are read from the copy.
#
# Usage: tests/e2e/follow_e2e.sh [PATH-TO-dlcount-pipe]   (default target/release/dlcount-pipe)
# Needs logrotate and python3 (as root it apt-installs logrotate when missing).
# Output: "ok - NAME" / "not ok - NAME" lines, then "N passed, M failed".
# DLCOUNT_E2E_KEEP=1 keeps the temporary directory.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/e2e/sandbox.sh
. "$HERE/sandbox.sh"

BIN_SRC=$(pa_binary "${1:-}")
[ -x "$BIN_SRC" ] || pa_die "no executable dlcount-pipe at $BIN_SRC (build it: cargo build --release)"
pa_require_tools logrotate:/usr/sbin/logrotate python3:python3
LOGROTATE=$(command -v logrotate || echo /usr/sbin/logrotate)

START=$(date +%s)
T=$(mktemp -d /tmp/dlcount-follow-e2e.XXXXXX)
WRITER_PID=""
FOLLOW_PID=""
cleanup() {
    local rc=$?
    set +e
    [ -z "$WRITER_PID" ] || kill -KILL "$WRITER_PID" 2>/dev/null
    [ -z "$FOLLOW_PID" ] || kill -KILL "$FOLLOW_PID" 2>/dev/null
    if [ "${DLCOUNT_E2E_KEEP:-0}" = 1 ]; then pa_log "kept $T"; else rm -rf "$T"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Lines carry the writer's local time: about noon, no midnight in the run.
TZ=$(pa_noon_tz)
export TZ
LOGS=$T/logs
mkdir -p "$LOGS" "$T/root"
LOG=$LOGS/access.log
TRUTH=$T/written.log
DB=$T/dlcount.sqlite
cp "$BIN_SRC" "$T/dlcount-pipe"
BIN=$T/dlcount-pipe

# ------------------------------------------------------------------ writer
# Writes combined-format lines at RATE lines/s to LOG through one O_APPEND
# descriptor (and each line to TRUTH), reopens LOG on SIGHUP, stops writing
# on SIGUSR1 (and says so by creating PAUSED) until SIGUSR2, and exits after
# SECONDS. Every seventh request is three identical lines (a segmented
# download's equal ranges started in one second: three real requests).
cat >"$T/writer.py" <<'PY'
import os, signal, sys, time
log, truth, rate, seconds, paused_flag = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
fd = os.open(log, flags, 0o644)
out = open(truth, "ab", buffering=0)
state = {"reopen": False, "paused": False}
def hup(*_): state["reopen"] = True
def usr1(*_):
    state["paused"] = True
    open(paused_flag, "w").close()
def usr2(*_):
    state["paused"] = False
signal.signal(signal.SIGHUP, hup)
signal.signal(signal.SIGUSR1, usr1)
signal.signal(signal.SIGUSR2, usr2)
files = ["/isos/a.iso", "/isos/b.iso", "/isos/c.iso", "/isos/a.iso.sha256", "/isos/nope.iso"]
start = time.time()
i = 0
while time.time() - start < seconds:
    if state["reopen"]:
        os.close(fd)
        fd = os.open(log, flags, 0o644)
        state["reopen"] = False
    if state["paused"]:
        time.sleep(0.001)
        continue
    path = files[i % len(files)]
    status = 404 if path.endswith("nope.iso") else (206 if i % 3 == 0 else 200)
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    line = '198.51.100.%d - - [%s] "GET %s HTTP/1.1" %d %d "-" "Wget/1.21.4"\n' % (
        i % 50, stamp, path, status, 1000 + i)
    data = (line * 3 if i % 7 == 0 else line).encode()
    os.write(fd, data)
    out.write(data)
    i += 1
    # Steady: the i-th request at start + i / rate.
    delay = start + i / rate - time.time()
    if delay > 0:
        time.sleep(delay)
PY
python3 "$T/writer.py" "$LOG" "$TRUTH" 300 11 "$T/paused" &
WRITER_PID=$!
for _ in $(seq 1 50); do [ -s "$LOG" ] && break; sleep 0.1; done

# --------------------------------------------------------------- logrotate
for kind in create copytruncate; do
    {
        printf '%s {\n    rotate 20\n    missingok\n    compress\n    delaycompress\n' "$LOG"
        if [ "$kind" = create ]; then
            printf '    create 0644\n    postrotate\n        kill -HUP %s\n    endscript\n' "$WRITER_PID"
        else
            printf '    copytruncate\n'
            printf '    prerotate\n        rm -f %s; kill -USR1 %s; while [ ! -e %s ]; do sleep 0.01; done\n    endscript\n' \
                "$T/paused" "$WRITER_PID" "$T/paused"
            printf '    postrotate\n        kill -USR2 %s\n    endscript\n' "$WRITER_PID"
        fi
        printf '}\n'
    } >"$T/$kind.conf"
done
chmod 0644 "$T"/*.conf
rotate() { # rotate create|copytruncate
    "$LOGROTATE" -f -s "$T/logrotate.state" "$T/$1.conf"
}

# ------------------------------------------------------------------ follow
start_follow() {
    "$BIN" follow --db "$DB" --root "$T/root" "$LOG" 2>>"$T/follow.err" &
    FOLLOW_PID=$!
}
# Kills follow with SIGKILL; the wait status (128 + 9) proves it was still
# running and died of the signal rather than having exited on its own.
kill_follow() {
    kill -KILL "$FOLLOW_PID"
    KILL_STATUS=0
    wait "$FOLLOW_PID" 2>/dev/null || KILL_STATUS=$?
    FOLLOW_PID=""
}

start_follow
sleep 1.5
check "logrotate create while following" rotate create
sleep 1
kill_follow
check_eq "follow was running and died of SIGKILL (1)" "$KILL_STATUS" 137
check "logrotate create while follow is down" rotate create
sleep 0.5
start_follow
sleep 1.5
check "logrotate copytruncate while following" rotate copytruncate
sleep 1
kill_follow
check_eq "follow was running and died of SIGKILL (2)" "$KILL_STATUS" 137
check "logrotate copytruncate while follow is down" rotate copytruncate
sleep 0.5
start_follow
sleep 1.5
check "logrotate create while following (again)" rotate create
wait "$WRITER_PID"
WRITER_PID=""
check "older rotations were compressed (delaycompress)" test -e "$LOGS/access.log.2.gz"

# ------------------------------------------------------------------ answer
python3 - "$TRUTH" >"$T/expected.json" <<'PY'
import json, re, sys
months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
line_re = re.compile(r'^(\S+) - - \[(\d\d)/(\w{3})/(\d{4}):[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+) ')
out, seen = {}, set()
for line in open(sys.argv[1]):
    m = line_re.match(line)
    if not m:
        sys.exit("unparsed: " + line)
    ip, day, mon, year, method, path, status, nbytes = m.groups()
    if method not in ("GET", "HEAD") or status not in ("200", "206") or not path.endswith(".iso"):
        continue
    cell = out.setdefault(path, {}).setdefault("%s-%02d" % (year, months.index(mon) + 1),
                                               {"downloads": 0, "requests": 0, "bytes": 0})
    if (ip, path, year, mon, day) not in seen:
        seen.add((ip, path, year, mon, day))
        cell["downloads"] += 1
    cell["requests"] += 1
    cell["bytes"] += int(nbytes)
print(json.dumps(out, sort_keys=True))
PY
WRITTEN=$(wc -l <"$TRUTH")
diag "the writer wrote $WRITTEN lines; rotations: $(ls "$LOGS" | tr '\n' ' ')"

report() { "$BIN" report --db "$DB" --json --detail 2>/dev/null; }
same_as_expected() {
    report >"$T/report.json" || return 1
    json_equal "$T/report.json" "$T/expected.json"
}
matched=no
for _ in $(seq 1 300); do
    if same_as_expected; then matched=yes; break; fi
    sleep 0.2
done
check_eq "report --json --detail equals the answer for every line written" "$matched" yes
if [ "$matched" = no ]; then
    diag "expected: $(cat "$T/expected.json")"
    diag "report:   $(tr -d ' \n' <"$T/report.json")"
fi
rc=0
kill -TERM "$FOLLOW_PID"
wait "$FOLLOW_PID" || rc=$?
FOLLOW_PID=""
check_eq "follow exits 0 on SIGTERM" "$rc" 0
# Both restarts resumed at their checkpoint, in the file a rotation had
# moved (create) or copied (copytruncate) to access.log.1 meanwhile.
check_eq "both restarts resumed at their checkpoint in access.log.1" \
    "$(grep -c 'was rotated while dlcount was stopped: reading on in .*access.log.1 from byte' "$T/follow.err" || true)" 2
check_eq "no restart read a file again from its start" "$(grep -c 'does not fit it any more' "$T/follow.err" || true)" 0
check "a running follow saw the create rotation" grep -q 'was rotated: reading the new file' "$T/follow.err"
check "a running follow read the rest of a copytruncate from the copy" \
    grep -q 'was truncated (copytruncate) at byte .*: reading the lines not read yet from the copy' "$T/follow.err"
check_eq "no line lost to copytruncate" "$(grep -c 'no copy of it was found' "$T/follow.err" || true)" 0
# An import of every rotated file changes nothing.
mapfile -t parts < <(ls "$LOGS"/access.log*)
rc=0
"$BIN" import --db "$DB" --quiet "${parts[@]}" 2>"$T/import.err" || rc=$?
check_eq "import of every rotated part exits 0" "$rc" 0
check "... and changes nothing" same_as_expected
sed 's/^/# follow: /' "$T/follow.err" | grep -v 'running as root' | head -n 30
diag "took $(($(date +%s) - START)) s"
results_summary
