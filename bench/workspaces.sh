#!/usr/bin/env bash
# Issue 34 (acceptance 4): what many groups and workspaces cost a request. Two users of one
# server: `heavy`, in 50 groups, reaching 500 workspaces (10 granted to each group), and
# `light`, in no group, reaching `personal-files` and `common-files` only. Both read a 4 KiB
# file in a workspace (heavy: w250/f.txt through a group's grant, light: common-files/f.txt
# through everyone's), with wrk --latency at 1 connection and at 16:
#
#   1. REST stat (POST /a/tree/stats) p99, heavy against light (target <= 1.2x)
#   2. WebDAV GET p99, heavy against light (target <= 1.2x)
#   3. PROPFIND Depth 1 of /dav/ by heavy (502 entries: 500 workspaces) against PROPFIND Depth 1
#      of a folder of 500 files by light (target <= 1.2x), p99 and req/s
#
# PROPFIND of 10,000 entries against Apache mod_dav is bench/dav.sh's (its PROPFIND line;
# BENCH_SIZE_MB=64 makes its large-file part short). Every request must answer 2xx.
#
# Usage: bench/workspaces.sh   (after cargo build --release)
# Environment:
#   CELLS_BIN             binary [target/release/cells]
#   BENCH_WRK_DURATION    each wrk run [5s]
#   BENCH_WORKSPACES      workspaces reaching heavy [500]
#   BENCH_GROUPS          groups heavy is in [50]
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${BENCH_WRK_DURATION:-5s}
WORKSPACES=${BENCH_WORKSPACES:-500}
GROUPS_N=${BENCH_GROUPS:-50}
check_count BENCH_WORKSPACES "$WORKSPACES"
check_count BENCH_GROUPS "$GROUPS_N"
resolve_cells_bin
ensure_tool wrk
for tool in curl python3 base64; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
setup_workdir
start_server

cells_cli admin user create -u heavy -p heavy-password-1 >/dev/null
cells_cli admin user create -u light -p light-password-1 >/dev/null
HEAVY=$(cells_cli admin user token -u heavy -e 4h -q)
LIGHT=$(cells_cli admin user token -u light -e 4h -q)
ADMIN_PAT=$(cells_cli admin user token -u "$ADMIN_LOGIN" -e 4h -q)
basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }

log "making $GROUPS_N groups and $WORKSPACES workspaces over REST"
BASE_URL=$BASE_URL ADMIN_PAT=$ADMIN_PAT WORKSPACES=$WORKSPACES GROUPS_N=$GROUPS_N python3 - <<'PY'
import http.client, json, os, urllib.parse
base = urllib.parse.urlparse(os.environ["BASE_URL"])
conn = http.client.HTTPConnection(base.hostname, base.port)
headers = {"Authorization": "Bearer " + os.environ["ADMIN_PAT"], "Content-Type": "application/json"}
def call(method, path, body):
    conn.request(method, path, json.dumps(body), headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
groups, workspaces = int(os.environ["GROUPS_N"]), int(os.environ["WORKSPACES"])
for g in range(groups):
    call("PUT", f"/a/group/g{g}", {})
    call("PUT", f"/a/group/g{g}/member/heavy", {})
for w in range(workspaces):
    call("PUT", f"/a/workspace/w{w}", {"Label": f"Workspace {w}"})
    call("POST", f"/a/workspace/w{w}/grant", {"Group": f"g{w % groups}", "Rights": "rw"})
PY

head -c 4096 /dev/urandom >"$WORK_DIR/f.txt"
middle=w$((WORKSPACES / 2))
expect_status 201 "heavy PUT $middle/f.txt" -X PUT -H "Authorization: Bearer $HEAVY" --data-binary @"$WORK_DIR/f.txt" "$BASE_URL/a/content/$middle/f.txt"
expect_status 201 "light PUT common-files/f.txt" -X PUT -H "Authorization: Bearer $LIGHT" --data-binary @"$WORK_DIR/f.txt" "$BASE_URL/a/content/common-files/f.txt"
log "light: a folder of $WORKSPACES files"
for i in $(seq 1 "$WORKSPACES"); do printf 'url = "%s/dav/personal-files/many/f%s.txt"\nupload-file = "%s"\n' "$BASE_URL" "$i" "$WORK_DIR/f.txt"; done >"$WORK_DIR/uploads.cfg"
expect_status 201 "MKCOL many" -X MKCOL -u "light:$LIGHT" "$BASE_URL/dav/personal-files/many/"
ccurl --parallel --parallel-max 8 -u "light:$LIGHT" -K "$WORK_DIR/uploads.cfg" -o /dev/null
entries=$(ccurl -X PROPFIND -H 'Depth: 1' -u "heavy:$HEAVY" "$BASE_URL/dav/" | grep -o '<D:href>' | wc -l)
many=$(ccurl -X PROPFIND -H 'Depth: 1' -u "light:$LIGHT" "$BASE_URL/dav/personal-files/many/" | grep -o '<D:href>' | wc -l)
[[ $entries -ge $((WORKSPACES + 2)) ]] || die "PROPFIND /dav/ by heavy shows $entries entries, expected $((WORKSPACES + 2))"
[[ $many -ge $((WORKSPACES + 1)) ]] || die "PROPFIND of the folder shows $many entries"
log "PROPFIND /dav/: $entries entries; the folder: $many"

# measure LABEL CONNECTIONS METHOD PATH BODY AUTHORIZATION [DEPTH]: sets P99 and RPS.
measure() {
  BENCH_DEPTH=${7:-} run_wrk "$1" 2 "$2" "$DURATION" "$3" "$4" "$5" "$6"
  P99=$WRK_P99
  RPS=$WRK_RPS
}

rows=()
compare() { # NAME CONNECTIONS METHOD PATH_HEAVY BODY_HEAVY AUTH_HEAVY PATH_LIGHT BODY_LIGHT AUTH_LIGHT [DEPTH]
  local heavy_p99 heavy_rps
  measure "$1 heavy c$2" "$2" "$3" "$4" "$5" "$6" "${10:-}"
  heavy_p99=$P99 heavy_rps=$RPS
  measure "$1 light c$2" "$2" "$3" "$7" "$8" "$9" "${10:-}"
  rows+=("$(printf '%-40s %4s %10s %10s %8s %10s %10s' "$1" "c$2" "$heavy_p99" "$P99" "$(ratio "$heavy_p99" "$P99")" "$heavy_rps" "$RPS")")
}

stat_body() { printf '{"NodePaths":["%s"]}' "$1"; }
for c in 1 16; do
  compare "REST stat (500 ws / 2 ws)" "$c" POST /a/tree/stats "$(stat_body "$middle/f.txt")" "Bearer $HEAVY" \
    /a/tree/stats "$(stat_body common-files/f.txt)" "Bearer $LIGHT"
  compare "WebDAV GET 4 KiB (500 ws / 2 ws)" "$c" GET "/dav/$middle/f.txt" "" "$(basic heavy "$HEAVY")" \
    /dav/common-files/f.txt "" "$(basic light "$LIGHT")"
  compare "PROPFIND /dav/ (500 ws) / folder (500)" "$c" PROPFIND /dav/ "" "$(basic heavy "$HEAVY")" \
    /dav/personal-files/many/ "" "$(basic light "$LIGHT")" 1
done

echo
print_context
printf 'heavy: %s groups, %s workspaces; light: personal-files and common-files\n\n' "$GROUPS_N" "$WORKSPACES"
printf '%-40s %4s %10s %10s %8s %10s %10s\n' "measure" "conn" "p99 heavy" "p99 light" "ratio" "rps heavy" "rps light"
printf '%-40s %4s %10s %10s %8s %10s %10s\n' "----------------------------------------" "----" "----------" "----------" "--------" "----------" "----------"
printf '%s\n' "${rows[@]}"
echo "(p99 in ms; ratio = p99 heavy / p99 light, target <= 1.2)"
