# shellcheck shell=bash
# The model of what a one-server e2e suite's clients did, written down as
# they do it (apache_e2e.sh, nginx_e2e.sh): the counting rules of DESIGN.md
# applied by hand, never by reading a log. A line counts when GET/HEAD,
# status 200/206 and the normalised path ends in .iso; one download per
# (client, path, day). A suite runs on one local day, so day = run.
#
#   expect CLIENT PATH [REQUESTS]   REQUESTS counted lines (default 1)
#   done_ CLIENT PATH               that download's bytes covered the file
#   model_completed_json MONTH      {"PATH": {"MONTH": completed}}, paths
#                                   with none left out (report --json --completed)
#   check_completed DIR MONTH CMD...  one result: CMD's JSON (a `report --json
#                                   --completed`) equals the model's; files in DIR

declare -A REQ=() DL=() SEEN=() DONE=()
expect() {
    local client=$1 path=$2 n=${3:-1}
    REQ[$path]=$((${REQ[$path]:-0} + n))
    if [ -z "${SEEN[$client $path]:-}" ]; then
        SEEN[$client $path]=1
        DL[$path]=$((${DL[$path]:-0} + 1))
    fi
}
done_() { DONE[$1 $2]=1; }
model_completed_json() {
    local -A per_path=()
    local k p sep=""
    for k in "${!DONE[@]}"; do
        p=${k#* }
        per_path[$p]=$((${per_path[$p]:-0} + 1))
    done
    printf '{'
    for p in "${!per_path[@]}"; do
        printf '%s"%s": {"%s": %d}' "$sep" "$p" "$1" "${per_path[$p]}"
        sep=", "
    done
    printf '}\n'
}
check_completed() {
    local dir=$1 month=$2
    shift 2
    model_completed_json "$month" >"$dir/expected-completed.json"
    "$@" >"$dir/report-completed.json" 2>>"$dir/report.err" || true
    if json_equal "$dir/report-completed.json" "$dir/expected-completed.json"; then
        ok "report --json --completed equals the downloads curl, wget and aria2 completed"
    else
        not_ok "report --json --completed equals the downloads curl, wget and aria2 completed"
        diag "expected:"; sed 's/^/#   /' "$dir/expected-completed.json"
        diag "report:"; sed 's/^/#   /' "$dir/report-completed.json"
    fi
}
