#!/usr/bin/env bash
# Issue 2: large file transfers over REST, the server's memory, and a cheap REST call's rate.
#
#   (a) baseline: cat FILE > /dev/null, dd bs=1M, and dd bs=1M conv=fsync (the server fsyncs
#       every blob before it commits, so that is the fair comparison for uploads)
#   (b) PUT /a/content (curl -T) and GET /a/content (curl -o), MB/s, SHA-256 of both ends
#   (c) the server's peak RSS (VmHWM) after the transfers
#   (d) POST /a/tree/stats with Basic admin:password, wrk with 1 and 16 connections
#
# Usage: bench/files.sh   (after cargo build --release)
# Environment:
#   CELLS_BIN             binary [target/release/cells, or $CARGO_TARGET_DIR/release/cells]
#   BENCH_SIZE_MB         file size in MiB [1024]
#   BENCH_WRK_DURATION    each wrk run [5s]
#   BENCH_WRK_THREADS     wrk threads (never more than connections) [2]
#   BENCH_START_TIMEOUT   seconds to wait for /healthz [60]
#   TMPDIR                where the temp dir goes; needs about 3.5 x BENCH_SIZE_MB free
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MB=${BENCH_SIZE_MB:-1024}
DURATION=${BENCH_WRK_DURATION:-5s}
THREADS=${BENCH_WRK_THREADS:-2}
check_count BENCH_SIZE_MB "$SIZE_MB"
check_count BENCH_WRK_THREADS "$THREADS"
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "BENCH_WRK_DURATION must look like 5s, not '$DURATION'"
SIZE_BYTES=$((SIZE_MB * 1024 * 1024))

resolve_cells_bin
for tool in curl python3 sha256sum dd awk; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
ensure_tool wrk

setup_workdir

# Source, one copy (reused by both dd runs), the stored blob and the download: ~3.5 x size.
need_kib=$((SIZE_MB * 1024 * 7 / 2 + 256 * 1024))
free_kib=$(df -Pk "$WORK_DIR" | awk 'NR == 2 { print $4 }')
if ((free_kib < need_kib)); then
  die "$WORK_DIR has $((free_kib / 1024)) MiB free; this run needs about $((need_kib / 1024)) MiB (set TMPDIR elsewhere or lower BENCH_SIZE_MB)"
fi

SRC=$WORK_DIR/source.bin
COPY=$WORK_DIR/copy.bin
DOWN=$WORK_DIR/download.bin

# --- (a) baseline ---------------------------------------------------------------------------
log "writing $SIZE_MB MiB of random data to $SRC"
head -c "${SIZE_MB}M" /dev/urandom >"$SRC"
[[ $(stat -c %s "$SRC") -eq $SIZE_BYTES ]] || die "$SRC does not have $SIZE_BYTES bytes"
SRC_SHA=$(sha256sum "$SRC" | cut -d' ' -f1)

log "baseline: cat > /dev/null (the file is in the page cache, as it is for the upload)"
t0=$EPOCHREALTIME
cat "$SRC" >/dev/null
t1=$EPOCHREALTIME
CAT_S=$(elapsed "$t0" "$t1")

log "baseline: dd bs=1M"
t0=$EPOCHREALTIME
dd if="$SRC" of="$COPY" bs=1M status=none
t1=$EPOCHREALTIME
DD_S=$(elapsed "$t0" "$t1")
rm -f -- "$COPY"

log "baseline: dd bs=1M conv=fsync"
t0=$EPOCHREALTIME
dd if="$SRC" of="$COPY" bs=1M conv=fsync status=none
t1=$EPOCHREALTIME
DD_SYNC_S=$(elapsed "$t0" "$t1")
rm -f -- "$COPY"

# --- server ---------------------------------------------------------------------------------
start_server
BASIC=(-u "$ADMIN_LOGIN:$ADMIN_PASSWORD")
HWM_IDLE_KIB=$(proc_kib VmHWM)

# Also runs the one Argon2 check: the transfers below find the password in the cache.
expect_status 200 "create personal-files/bench" "${BASIC[@]}" -X POST \
  -H 'Content-Type: application/json' \
  -d '{"Nodes":[{"Path":"personal-files/bench","Type":"COLLECTION"}]}' "$BASE_URL/a/tree/create"
HWM_AUTH_KIB=$(proc_kib VmHWM)

# --- (b) transfers --------------------------------------------------------------------------
URL=$BASE_URL/a/content/personal-files/bench/file.bin
log "upload: curl -T (PUT /a/content), $SIZE_MB MiB"
# "Expect:" off: curl would otherwise wait for a 100 Continue before sending the body.
read -r UP_CODE UP_S < <(ccurl "${BASIC[@]}" -H 'Expect:' -T "$SRC" -o "$WORK_DIR/upload.json" \
  -w '%{http_code} %{time_total}\n' "$URL" || true)
[[ ${UP_CODE:-} == 201 ]] || {
  cat "$WORK_DIR/upload.json" >&2 2>/dev/null || true
  die "upload answered HTTP ${UP_CODE:-nothing}, expected 201"
}

log "download: curl -o (GET /a/content)"
read -r DOWN_CODE DOWN_S < <(ccurl "${BASIC[@]}" -o "$DOWN" -w '%{http_code} %{time_total}\n' "$URL" || true)
[[ ${DOWN_CODE:-} == 200 ]] || die "download answered HTTP ${DOWN_CODE:-nothing}, expected 200"
DOWN_BYTES=$(stat -c %s "$DOWN")
DOWN_SHA=$(sha256sum "$DOWN" | cut -d' ' -f1)
if [[ $DOWN_SHA == "$SRC_SHA" && $DOWN_BYTES -eq $SIZE_BYTES ]]; then
  SHA_OK=yes
else
  SHA_OK="NO ($DOWN_BYTES bytes, sha256 $DOWN_SHA)"
fi
rm -f -- "$DOWN"

# --- (c) memory -----------------------------------------------------------------------------
HWM_KIB=$(proc_kib VmHWM)
RSS_KIB=$(proc_kib VmRSS)

# --- (d) POST /a/tree/stats -----------------------------------------------------------------
STATS_BODY='{"NodePaths":["personal-files/bench"]}'
BASIC_HEADER="Basic $(printf '%s:%s' "$ADMIN_LOGIN" "$ADMIN_PASSWORD" | base64 -w0)"
declare -A STATS_RPS=()
for connections in 1 16; do
  # The password cache lasts 5 minutes; make sure wrk measures the cached path.
  expect_status 200 "tree/stats warm-up" -H "Authorization: $BASIC_HEADER" -H 'Content-Type: application/json' \
    -d "$STATS_BODY" "$BASE_URL/a/tree/stats"
  run_wrk "tree/stats, Basic password, $connections connection(s)" "$THREADS" "$connections" "$DURATION" \
    POST /a/tree/stats "$STATS_BODY" "$BASIC_HEADER"
  STATS_RPS[$connections]=$WRK_RPS
done
HWM_END_KIB=$(proc_kib VmHWM)

# --- summary --------------------------------------------------------------------------------
HWM_MIB=$(kib_to_mib "$HWM_KIB")
RSS_TARGET=$(awk -v m="$HWM_MIB" 'BEGIN { print (m < 100 ? "ok (< 100 MiB)" : "OVER 100 MiB") }')
row() { printf '%-44s %14s  %s\n' "$@"; }
{
  printf '\n== cells bench/files.sh: %s MiB ==\n' "$SIZE_MB"
  print_context
  printf '\n'
  row "measure" "value" "detail"
  row "--------------------------------------------" "--------------" "------------------------------"
  row "cat file > /dev/null" "$(mb_per_s "$SIZE_BYTES" "$CAT_S") MB/s" "${CAT_S} s"
  row "dd bs=1M" "$(mb_per_s "$SIZE_BYTES" "$DD_S") MB/s" "${DD_S} s"
  row "dd bs=1M conv=fsync" "$(mb_per_s "$SIZE_BYTES" "$DD_SYNC_S") MB/s" "${DD_SYNC_S} s"
  row "upload, curl -T (PUT /a/content)" "$(mb_per_s "$SIZE_BYTES" "$UP_S") MB/s" "$(elapsed 0 "$UP_S") s, HTTP $UP_CODE"
  row "download, curl -o (GET /a/content)" "$(mb_per_s "$SIZE_BYTES" "$DOWN_S") MB/s" "$(elapsed 0 "$DOWN_S") s, HTTP $DOWN_CODE"
  row "SHA-256 download = source" "$SHA_OK" ""
  row "server peak RSS after transfers (VmHWM)" "$HWM_MIB MiB" "$RSS_TARGET; now $(kib_to_mib "$RSS_KIB") MiB"
  row "  VmHWM idle / after first Argon2 login" "$(kib_to_mib "$HWM_IDLE_KIB") MiB" "$(kib_to_mib "$HWM_AUTH_KIB") MiB"
  row "  VmHWM at the end (after wrk)" "$(kib_to_mib "$HWM_END_KIB") MiB" ""
  row "POST /a/tree/stats, Basic, 1 connection" "${STATS_RPS[1]} req/s" "wrk -t1 -c1 -d$DURATION"
  row "POST /a/tree/stats, Basic, 16 connections" "${STATS_RPS[16]} req/s" "wrk -t$((THREADS < 16 ? THREADS : 16)) -c16 -d$DURATION"
  printf '\nMB/s = 10^6 bytes per second. Target (issue 2): 1 GiB up and down, peak RSS < 100 MiB.\n'
}

[[ $SHA_OK == yes ]] || die "the downloaded file differs from the uploaded one"
