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
