# shellcheck shell=bash
# Shared helpers of the bench scripts (files.sh, auth.sh). Sourced, never run on its own.
#
# A script that sources this file gets: the cells binary ($CELLS_BIN), a private temp dir
# ($WORK_DIR, removed on exit), a throwaway server on 127.0.0.1 with a fresh data dir
# ($BASE_URL, $DATA_DIR, $SERVER_PID, admin password $ADMIN_PASSWORD), killed on exit, and
# helpers to time things and to run wrk. On request (start_https_server) a second server that
# serves HTTPS, also killed on exit.

export LC_ALL=C # "1.5", not "1,5", in EPOCHREALTIME, awk and printf

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
ADMIN_LOGIN="admin"

WORK_DIR=""
DATA_DIR=""
SERVER_PID=""
SERVER_LOG=""
BASE_URL=""
ADMIN_PASSWORD=""
HTTPS_PID=""
HTTPS_LOG=""
HTTPS_URL=""
HTTPS_DATA_DIR=""
HTTPS_CA=""

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# The binary: $CELLS_BIN, else $CARGO_TARGET_DIR/release/cells, else target/release/cells.
resolve_cells_bin() {
  local default
  if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
    default=$CARGO_TARGET_DIR/release/cells
  else
    default=$REPO_ROOT/target/release/cells
  fi
  CELLS_BIN=${CELLS_BIN:-$default}
  if [[ ! -x $CELLS_BIN ]]; then
    die "no cells binary at $CELLS_BIN
  build it with cargo build --release (in $REPO_ROOT), or point CELLS_BIN at a binary"
  fi
  case $CELLS_BIN in
    */debug/*) warn "$CELLS_BIN looks like a debug build: its numbers say little about release performance" ;;
    *) ;;
  esac
}

# ensure_tool COMMAND [APT_PACKAGE]: install the package with apt-get when the command is missing
# (as root, or through sudo -n); apt-get update only if the first install fails.
ensure_tool() {
  local cmd=$1 pkg=${2:-$1}
  local -a sudo=()
  command -v "$cmd" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || die "$cmd is missing and there is no apt-get: install $pkg yourself"
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "$cmd is missing and this is not root: install $pkg yourself"
    sudo=(sudo -n)
  fi
  log "$cmd is missing: installing package $pkg"
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >&2; then
    log "install failed; running apt-get update and trying again"
    "${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >&2 || die "could not install $pkg"
  fi
  command -v "$cmd" >/dev/null 2>&1 || die "package $pkg is installed but $cmd is still not on PATH"
}

# curl that never goes through a proxy (we only ever talk to 127.0.0.1).
ccurl() { curl --noproxy '*' -sS "$@"; }

# A TCP port that is free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Whether PID runs (a zombie child does not count: kill -0 would still succeed on it).
alive() {
  local state
  state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# stop_server PID: SIGTERM, at most 10 s of graceful shutdown, then SIGKILL; reaped.
stop_server() {
  local pid=$1 i
  [[ -n $pid ]] || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      warn "server $pid did not stop on SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  stop_server "$SERVER_PID"
  stop_server "$HTTPS_PID"
  if [[ $status -ne 0 && -n $SERVER_LOG && -s $SERVER_LOG ]]; then
    printf -- '--- last lines of the server log ---\n' >&2
    tail -n 20 "$SERVER_LOG" >&2 || true
  fi
  if [[ $status -ne 0 && -n $HTTPS_LOG && -s $HTTPS_LOG ]]; then
    printf -- '--- last lines of the HTTPS server log ---\n' >&2
    tail -n 20 "$HTTPS_LOG" >&2 || true
  fi
  if [[ -n $WORK_DIR && -d $WORK_DIR ]]; then
    rm -rf -- "$WORK_DIR"
  fi
  exit "$status"
}

# Make $WORK_DIR (under $TMPDIR, default /tmp) and arrange for everything to be cleaned up.
setup_workdir() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cells-bench.XXXXXX")
  DATA_DIR=$WORK_DIR/data
}

# The cells CLI on our data dir, never on a database or config file named by the environment.
cells_cli() {
  env -u CELLS_CONFIG -u CELLS_DATABASE_URL "$CELLS_BIN" --data "$DATA_DIR" "$@"
}

# wait_healthz PID URL LOG [CURL_ARGS...]: wait (at most $BENCH_START_TIMEOUT s, default 60)
# until GET URL/healthz answers 200.
wait_healthz() {
  local pid=$1 url=$2 logfile=$3 code deadline
  shift 3
  deadline=$((SECONDS + ${BENCH_START_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    alive "$pid" || die "the server exited during start-up (log: $logfile)"
    code=$(ccurl -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url/healthz" 2>/dev/null) || true
    if [[ $code == 200 ]]; then
      return 0
    fi
    sleep 0.2
  done
  die "the server did not answer $url/healthz within ${BENCH_START_TIMEOUT:-60} s"
}

# Start a fresh server on a free port and wait until GET /healthz answers 200.
start_server() {
  local port
  ADMIN_PASSWORD=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  port=$(free_port)
  SFTP_PORT=$(free_port)
  BASE_URL=http://127.0.0.1:$port
  SERVER_LOG=$WORK_DIR/server.log
  # Not through the cells_cli function: a backgrounded function would run in a subshell, and
  # $! would be that shell's pid. Here bash execs env, which execs cells: $! is the server.
  CELLS_ADMIN_LOGIN=$ADMIN_LOGIN CELLS_ADMIN_PASSWORD=$ADMIN_PASSWORD CELLS_LOG=${CELLS_LOG:-warn} \
    env -u CELLS_CONFIG -u CELLS_DATABASE_URL \
    "$CELLS_BIN" --data "$DATA_DIR" start --bind "127.0.0.1:$port" --sftp-bind "127.0.0.1:$SFTP_PORT" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  wait_healthz "$SERVER_PID" "$BASE_URL" "$SERVER_LOG"
  log "server $SERVER_PID ready on $BASE_URL (data in $DATA_DIR)"
}

# After start_server: a second server (BENCH_HTTPS=1 in dav.sh and s3.sh), the same binary and
# admin, with its own data dir and free ports, serving HTTPS with the self-signed certificate
# it makes at start-up in DATA/tls (SANs localhost, 127.0.0.1, ::1). Sets HTTPS_URL,
# HTTPS_DATA_DIR, HTTPS_PID, and HTTPS_CA, that certificate: clients trust it alone (curl
# --cacert, never -k), so they pay for verifying it as they would a real one.
start_https_server() {
  local port sftp_port
  port=$(free_port)
  sftp_port=$(free_port)
  HTTPS_URL=https://127.0.0.1:$port
  HTTPS_DATA_DIR=$WORK_DIR/data-https
  HTTPS_LOG=$WORK_DIR/server-https.log
  HTTPS_CA=$HTTPS_DATA_DIR/tls/self-signed-cert.pem
  mkdir -m 700 "$HTTPS_DATA_DIR"
  # A --tls-cert from the environment (CELLS_TLS_CERT) would conflict with --tls-self-signed.
  CELLS_ADMIN_LOGIN=$ADMIN_LOGIN CELLS_ADMIN_PASSWORD=$ADMIN_PASSWORD CELLS_LOG=${CELLS_LOG:-warn} \
    env -u CELLS_CONFIG -u CELLS_DATABASE_URL -u CELLS_TLS_CERT -u CELLS_TLS_KEY \
    "$CELLS_BIN" --data "$HTTPS_DATA_DIR" start --bind "127.0.0.1:$port" --sftp-bind "127.0.0.1:$sftp_port" \
    --tls-self-signed >"$HTTPS_LOG" 2>&1 &
  HTTPS_PID=$!
  # Until the server has written its certificate, curl fails (no CA file) and the wait goes on.
  wait_healthz "$HTTPS_PID" "$HTTPS_URL" "$HTTPS_LOG" --cacert "$HTTPS_CA"
  [[ -s $HTTPS_CA ]] || die "the HTTPS server answered but there is no $HTTPS_CA"
  log "HTTPS server $HTTPS_PID ready on $HTTPS_URL (data in $HTTPS_DATA_DIR, certificate $HTTPS_CA)"
}

# proc_kib FIELD: a /proc/PID/status field of the server, in KiB (VmHWM, VmRSS).
proc_kib() {
  awk -v field="$1:" '$1 == field { print $2 }' "/proc/$SERVER_PID/status"
}

kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# Seconds between two EPOCHREALTIME readings.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# mb_per_s BYTES SECONDS: decimal megabytes (10^6) per second.
mb_per_s() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", n / 1e6 / s; else print "inf" }'; }

# ratio A B [DIGITS]
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%.*f", d, a / b; else print "n/a" }'; }

# check_count NAME VALUE: VALUE must be a positive integer.
# median VALUES...: the middle value (the lower middle of an even count); "fail" if any is not
# a number.
median() {
  local v
  for v in "$@"; do
    [[ $v =~ ^-?[0-9]+([.][0-9]+)?$ ]] || { echo fail; return 0; }
  done
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

check_count() {
  [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, not '$2'"
}

# A wrk script that takes method, JSON body and Authorization header from the environment,
# so that no secret is written to disk or shown on a command line.
write_wrk_script() {
  WRK_SCRIPT=$WORK_DIR/request.lua
  cat >"$WRK_SCRIPT" <<'LUA'
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization ~= nil and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
local depth = os.getenv("BENCH_DEPTH")
if depth ~= nil and depth ~= "" then
  wrk.headers["Depth"] = depth
end
LUA
}

# run_wrk LABEL THREADS CONNECTIONS DURATION METHOD PATH BODY AUTHORIZATION
# Sets WRK_RPS, WRK_REQUESTS, WRK_SECONDS and WRK_P99 (ms; BENCH_DEPTH, if set, is sent as the
# Depth header). Any non-2xx answer fails the run: a throughput of
# refusals would be a meaningless number.
run_wrk() {
  local label=$1 threads=$2 connections=$3 duration=$4 method=$5 path=$6 body=$7 authorization=$8
  local out non2xx
  if ((threads > connections)); then
    threads=$connections
  fi
  [[ -n ${WRK_SCRIPT:-} ]] || write_wrk_script
  out=$WORK_DIR/wrk-$RANDOM.txt
  log "wrk: $label ($method $path, -t$threads -c$connections -d$duration)"
  BENCH_METHOD=$method BENCH_BODY=$body BENCH_AUTHORIZATION=$authorization \
    wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$WRK_SCRIPT" "$BASE_URL$path" >"$out" 2>&1 ||
    {
      cat "$out" >&2
      die "wrk failed ($label)"
    }
  sed 's/^/    /' "$out" >&2
  WRK_RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  WRK_REQUESTS=$(awk '/ requests in / { print $1 }' "$out")
  WRK_SECONDS=$(awk '/ requests in / {
      d = $4; sub(/,$/, "", d)
      if (d ~ /ms$/) { sub(/ms$/, "", d); d /= 1000 }
      else if (d ~ /us$/) { sub(/us$/, "", d); d /= 1000000 }
      else if (d ~ /m$/) { sub(/m$/, "", d); d *= 60 }
      else if (d ~ /h$/) { sub(/h$/, "", d); d *= 3600 }
      else { sub(/s$/, "", d) }
      printf "%.3f", d }' "$out")
  # The 99th percentile of latency, in ms (wrk --latency prints it in us, ms or s).
  WRK_P99=$(awk '$1 == "99%" {
      d = $2
      if (d ~ /us$/) { sub(/us$/, "", d); d /= 1000 }
      else if (d ~ /ms$/) { sub(/ms$/, "", d) }
      else if (d ~ /s$/) { sub(/s$/, "", d); d *= 1000 }
      printf "%.2f", d }' "$out")
  [[ -n $WRK_RPS && -n $WRK_REQUESTS && -n $WRK_SECONDS ]] || die "could not read wrk's output ($label)"
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  if [[ -n $non2xx && $non2xx != 0 ]]; then
    die "$label: $non2xx of $WRK_REQUESTS answers were not 2xx/3xx"
  fi
  if grep -q 'Socket errors' "$out"; then
    warn "$label: wrk reports socket errors ($(grep 'Socket errors' "$out" | sed 's/^ *//'))"
  fi
}

# expect_status CODE LABEL CURL_ARGS...: one request that must answer CODE.
expect_status() {
  local want=$1 label=$2 code
  shift 2
  code=$(ccurl -o "$WORK_DIR/last-response" -w '%{http_code}' --max-time 120 "$@") || true
  if [[ $code != "$want" ]]; then
    cat "$WORK_DIR/last-response" >&2 2>/dev/null || true
    die "$label: expected HTTP $want, got ${code:-no answer}"
  fi
}

# https_line LABEL higher|lower HTTP HTTPS: one line of the HTTPS table of dav.sh and s3.sh
# (issue 30, acceptance 3): what HTTPS costs against plain HTTP, in % (for a rate the share of
# it lost, for a latency the share added; below 0: HTTPS did better, noise), and whether that
# is under 30 %. A value that is not a number (fail) gets no verdict.
https_header() {
  printf '%-34s %12s %12s %14s  %s\n' "measure" "cells http" "cells https" "https cost" "cost < 30 %?"
  printf '%-34s %12s %12s %14s  %s\n' "----------------------------------" "------------" "------------" \
    "--------------" "------------"
}
https_line() {
  local cost verdict
  read -r cost verdict < <(awk -v dir="$2" -v h="$3" -v s="$4" 'BEGIN {
    if (h !~ /^[0-9.]+$/ || s !~ /^[0-9.]+$/ || h <= 0) { print "- -"; exit }
    c = (dir == "higher" ? (h - s) / h : (s - h) / h) * 100
    printf "%.1f%% %s\n", c, (c < 30 ? "yes" : "NO") }')
  printf '%-34s %12s %12s %14s  %s\n' "$1" "$3" "$4" "$cost" "$verdict"
}

# Header lines shared by both scripts' reports.
print_context() {
  printf 'binary:  %s (%s)\n' "$CELLS_BIN" "$("$CELLS_BIN" --version 2>/dev/null || echo '?')"
  printf 'commit:  %s\n' "$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  printf 'machine: %s, %s CPUs, %s\n' "$(uname -sm)" "$(nproc 2>/dev/null || echo '?')" "$(date -u '+%Y-%m-%d %H:%M UTC')"
}
