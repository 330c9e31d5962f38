# shellcheck shell=bash
# The result lines every e2e suite prints, in one place: "ok - NAME",
# "not ok - NAME", "skip - NAME # WHY", diagnostics as "# ..." lines in order
# with them, and the closing "N passed, M failed[, K skipped]" line that
# scripts/test.sh reads. Source it once, at the top of a test script.

PASS=0
FAIL=0
SKIP=0
ok() { PASS=$((PASS + 1)); printf 'ok - %s\n' "$1"; }
not_ok() { FAIL=$((FAIL + 1)); printf 'not ok - %s\n' "$1"; }
skip() { SKIP=$((SKIP + 1)); printf 'skip - %s # %s\n' "$1" "$2"; }
# check NAME COMMAND...: one result from a command's exit status.
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}
# check_eq NAME GOT WANT
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; printf "# got '%s', want '%s'\n" "$2" "$3"; fi
}
# json_equal A B: JSON equality of two files, whatever the key order and layout.
json_equal() { python3 "$(dirname "${BASH_SOURCE[0]}")/plainlog.py" json-equal "$1" "$2"; }
diag() { printf '# %s\n' "$@"; }
show() { printf '%s\n' "$1" | sed 's/^/# | /'; }

# The closing "N passed, M failed[, K skipped]" line; fails if anything failed.
results_summary() {
    if [ "$SKIP" -gt 0 ]; then
        printf '%d passed, %d failed, %d skipped\n' "$PASS" "$FAIL" "$SKIP"
    else
        printf '%d passed, %d failed\n' "$PASS" "$FAIL"
    fi
    [ "$FAIL" -eq 0 ]
}
