#!/usr/bin/env bash
# Issue 5 (acceptance 5): our WebDAV server (/dav) against two peers, Apache 2.4 mod_dav and
# `rclone serve webdav`, all three on this machine in one run, with the same files and the same
# clients (wrk and curl):
#
#   1. GET of a 4 KiB file: wrk --latency, 1 connection (-t1 -c1) and 16 (-t2 -c16): req/s, p99
#   2. PUT (curl -T) and GET (curl -o /dev/null) of a BENCH_SIZE_MB file, MB/s, against
#      cat FILE into a loopback TCP connection (the issue's "cat speed over loopback"), and
#      cat FILE > /dev/null, of the same file
#   3. PROPFIND Depth: 1 on a folder of BENCH_ENTRIES files: time of one request (median of
#      BENCH_PROPFIND_RUNS) and the size of the answer
#
# and prints one table with a verdict per line: whether cells is at least as good as the best
# peer (for the large GET also whether it reaches 70 % of cat). With BENCH_HTTPS=1 (issue 30,
# acceptance 3) a second cells serves HTTPS with its self-signed certificate (lib.sh
# start_https_server) and runs the 4 KiB GET at 16 connections and the large PUT and GET right
# after cells over HTTP, with the same tools and files (curl verifies the certificate, --cacert;
# wrk does not verify); a second table shows what HTTPS costs. Every request is checked: a
# non-2xx answer during wrk, a failed curl, a wrong number of PROPFIND entries or a download
# that differs from the upload fails the run. Meeting a target or not does not.
#
# cells: /dav/personal-files/bench/ with Basic admin:PAT (cells admin user token -e 2h).
# Apache: a private httpd.conf (PEERS.md A1) on a free port, files under the temp dir, Basic
# auth from an htpasswd file. rclone: Debian's rclone, serve webdav with --user/--pass. The
# peers get the 4 KiB file and the BENCH_ENTRIES files written directly into the folder they
# serve; cells gets them over WebDAV (PUT, curl --parallel). All three servers, their files and
# the temp dir are removed on exit, including on failure.
#
# Usage: bench/dav.sh   (after cargo build --release; as root, which Apache needs)
# Environment:
#   CELLS_BIN             binary [target/release/cells, or $CARGO_TARGET_DIR/release/cells]
#   BENCH_SIZE_MB         large file, MiB [1024]
#   BENCH_ENTRIES         files in the PROPFIND folder [10000]
#   BENCH_PROPFIND_RUNS   PROPFIND requests per server, the median is shown [3]
#   BENCH_PROPFIND        allprop: <allprop/> body; prop: the 5 live properties rclone asks [allprop]
#   BENCH_WRK_DURATION    each wrk run [5s]
#   BENCH_WRK_THREADS     wrk threads of the 16-connection run [2]
#   BENCH_START_TIMEOUT   seconds to wait for each server [60]
#   BENCH_HTTPS           1: also measure cells over HTTPS against cells over HTTP [0]
#   TMPDIR                where the temp dir goes; needs about 4.2 x BENCH_SIZE_MB free (5.2 x with BENCH_HTTPS=1)
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MB=${BENCH_SIZE_MB:-1024}
ENTRIES=${BENCH_ENTRIES:-10000}
PROPFIND_RUNS=${BENCH_PROPFIND_RUNS:-3}
PROPFIND_KIND=${BENCH_PROPFIND:-allprop}
DURATION=${BENCH_WRK_DURATION:-5s}
THREADS=${BENCH_WRK_THREADS:-2}
HTTPS=${BENCH_HTTPS:-0}
check_count BENCH_SIZE_MB "$SIZE_MB"
check_count BENCH_ENTRIES "$ENTRIES"
check_count BENCH_PROPFIND_RUNS "$PROPFIND_RUNS"
check_count BENCH_WRK_THREADS "$THREADS"
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "BENCH_WRK_DURATION must look like 5s, not '$DURATION'"
[[ $PROPFIND_KIND == allprop || $PROPFIND_KIND == prop ]] || die "BENCH_PROPFIND must be allprop or prop, not '$PROPFIND_KIND'"
[[ $HTTPS == 0 || $HTTPS == 1 ]] || die "BENCH_HTTPS must be 0 or 1, not '$HTTPS'"
SIZE_BYTES=$((SIZE_MB * 1024 * 1024))
SMALL_BYTES=4096
SERVERS=(cells apache rclone)
# The servers of the 4 KiB GET and the large file: with BENCH_HTTPS=1, cells over HTTPS
# ("cells-https") right after cells, so that both meet the machine in the same state. It is no
# peer: it has its own table, and no PROPFIND.
MEASURED=("${SERVERS[@]}")
if [[ $HTTPS == 1 ]]; then
  MEASURED=(cells cells-https apache rclone)
fi

resolve_cells_bin
for tool in curl python3 sha256sum awk base64 od cmp; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
ensure_tool wrk
ensure_tool apache2 apache2
ensure_tool htpasswd apache2-utils
ensure_tool rclone
id www-data >/dev/null 2>&1 || die "there is no www-data user for Apache's workers"
[[ $(id -u) -eq 0 ]] || die "Apache needs root here (it starts as root, serves as www-data): run as root"
APACHE_MODULES=/usr/lib/apache2/modules
for module in mod_mpm_event mod_dav mod_dav_fs mod_dav_lock mod_auth_basic mod_authn_file; do
  [[ -f $APACHE_MODULES/$module.so ]] || die "no $APACHE_MODULES/$module.so (Debian's apache2 package has it)"
done

# --- temp dir, and a cleanup that also stops Apache and rclone ---------------------------------
APACHE_PID=""
APACHE_DIR=""
RCLONE_PID=""
RCLONE_LOG=""

# stop_pid NAME PID WAITABLE: SIGTERM, at most 10 s, then SIGKILL (with its children).
stop_pid() {
  local name=$1 pid=$2 waitable=$3 i child
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      warn "$name $pid did not stop on SIGTERM; killing it"
      for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        kill -KILL "$child" 2>/dev/null || true
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  if [[ $waitable == yes ]]; then
    wait "$pid" 2>/dev/null || true
  fi
}
stop_peers() {
  if [[ -n $RCLONE_PID ]]; then
    stop_pid rclone "$RCLONE_PID" yes
    RCLONE_PID=""
  fi
  # Apache daemonizes: its pid comes from its pid file, and it is not our child.
  if [[ -z $APACHE_PID && -n $APACHE_DIR && -s $APACHE_DIR/httpd.pid ]]; then
    APACHE_PID=$(cat "$APACHE_DIR/httpd.pid")
  fi
  if [[ -n $APACHE_PID ]]; then
    stop_pid apache2 "$APACHE_PID" no
    APACHE_PID=""
  fi
}
with_status() { return "$1"; }
cleanup_all() {
  local status=$?
  stop_peers
  if [[ $status -ne 0 && -n $APACHE_DIR && -s $APACHE_DIR/error.log ]]; then
    printf -- '--- last lines of the Apache error log ---\n' >&2
    tail -n 20 "$APACHE_DIR/error.log" >&2 || true
  fi
  if [[ $status -ne 0 && -n $RCLONE_LOG && -s $RCLONE_LOG ]]; then
    printf -- '--- last lines of the rclone log ---\n' >&2
    tail -n 20 "$RCLONE_LOG" >&2 || true
  fi
  # lib.sh's cleanup (our server, the temp dir) reads the status from $? and exits with it.
  with_status "$status" || cleanup
  cleanup
}

setup_workdir
trap cleanup_all EXIT
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)

# Source, and one stored copy per server: ~4 x size (5 x with HTTPS), plus the small files.
need_kib=$((SIZE_MB * 1024 * (1 + ${#MEASURED[@]}) + SIZE_MB * 1024 / 5 + ENTRIES * 3 * 8 + 256 * 1024))
free_kib=$(df -Pk "$WORK_DIR" | awk 'NR == 2 { print $4 }')
if ((free_kib < need_kib)); then
  die "$WORK_DIR has $((free_kib / 1024)) MiB free; this run needs about $((need_kib / 1024)) MiB (set TMPDIR elsewhere or lower BENCH_SIZE_MB)"
fi
# Apache's workers (www-data) must reach their DocumentRoot inside the temp dir; they may
# traverse it, not list it. Our data dir stays private.
chmod 711 "$WORK_DIR"
mkdir -m 700 "$DATA_DIR"

secret() { printf 'bench-%s' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"; }
basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }

# --- the files ------------------------------------------------------------------------------------
# tree/bench/4k.bin and tree/bench/many/fNNNNNN.txt: copied as they are to the peers' folders,
# uploaded over WebDAV to cells.
TREE=$WORK_DIR/tree
BIG=$WORK_DIR/big.bin
mkdir -p "$TREE/bench/many"
head -c "$SMALL_BYTES" /dev/urandom >"$TREE/bench/4k.bin"
log "writing $ENTRIES small files to $TREE/bench/many"
entry_name() { printf 'f%06d.txt' "$1"; }
for ((i = 1; i <= ENTRIES; i++)); do
  printf 'entry %d\n' "$i" >"$TREE/bench/many/$(entry_name "$i")"
done
log "writing $SIZE_MB MiB of random data to $BIG"
head -c "${SIZE_MB}M" /dev/urandom >"$BIG"
[[ $(stat -c %s "$BIG") -eq $SIZE_BYTES ]] || die "$BIG does not have $SIZE_BYTES bytes"
BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)

log "baseline: cat > /dev/null (the file is in the page cache, as it is for the uploads)"
t0=$EPOCHREALTIME
cat "$BIG" >/dev/null
t1=$EPOCHREALTIME
CAT_S=$(elapsed "$t0" "$t1")
CAT_MBS=$(mb_per_s "$SIZE_BYTES" "$CAT_S")

# The issue's baseline, "plain cat speed over loopback": cat writes the file into a loopback
# TCP connection (bash's /dev/tcp), and a reader drains it with 1 MiB reads, as a download's
# client would; timed from cat's start to the reader's last byte.
log "baseline: cat FILE > /dev/tcp/127.0.0.1/PORT, drained by a reader (1 MiB reads)"
cat >"$WORK_DIR/sink.py" <<'PY'
import os, socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
with open(sys.argv[1] + ".tmp", "w") as port_file:
    port_file.write(str(listener.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
connection, _ = listener.accept()
buffer, total = bytearray(1 << 20), 0
while (read := connection.recv_into(buffer)) > 0:
    total += read
with open(sys.argv[2], "w") as count_file:
    count_file.write(str(total))
PY
python3 "$WORK_DIR/sink.py" "$WORK_DIR/sink.port" "$WORK_DIR/sink.count" &
SINK_PID=$!
for _ in $(seq 100); do [[ -s $WORK_DIR/sink.port ]] && break; sleep 0.05; done
[[ -s $WORK_DIR/sink.port ]] || die "the loopback reader did not start"
t0=$EPOCHREALTIME
cat "$BIG" >"/dev/tcp/127.0.0.1/$(cat "$WORK_DIR/sink.port")"
wait "$SINK_PID" || die "the loopback reader failed"
t1=$EPOCHREALTIME
[[ $(cat "$WORK_DIR/sink.count") == "$SIZE_BYTES" ]] || die "the loopback reader got $(cat "$WORK_DIR/sink.count") bytes, not $SIZE_BYTES"
LOOP_MBS=$(mb_per_s "$SIZE_BYTES" "$(elapsed "$t0" "$t1")")

# --- servers --------------------------------------------------------------------------------------
declare -A ROOT AUTH HEADERS # per server: URL of the bench folder, Authorization, curl header file

# wait_http NAME URL: until URL answers anything at all (401 included).
wait_http() {
  local name=$1 url=$2 pid=$3 code deadline
  deadline=$((SECONDS + ${BENCH_START_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    if [[ -n $pid ]] && ! alive "$pid"; then
      die "$name exited during start-up"
    fi
    code=$(ccurl -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null) || true
    if [[ -n $code && $code != 000 ]]; then
      return 0
    fi
    sleep 0.2
  done
  die "$name did not answer on $url within ${BENCH_START_TIMEOUT:-60} s"
}

# The Authorization header goes to curl from a file (-H @file), not on a command line.
headers_file() {
  local file=$WORK_DIR/headers-$1
  printf 'Authorization: %s\n' "${AUTH[$1]}" >"$file"
  HEADERS[$1]=$file
}

# cells: the default SFTP listener (127.0.0.1:2022) could be taken; give it a free port too.
CELLS_SFTP_BIND=127.0.0.1:$(free_port)
export CELLS_SFTP_BIND
start_server
log "creating a personal access token with the CLI"
TOKEN=$(cells_cli admin user token -u "$ADMIN_LOGIN" -e 2h -l bench-dav -q)
[[ -n $TOKEN ]] || die "the CLI printed no token"
AUTH[cells]=$(basic "$ADMIN_LOGIN" "$TOKEN")
ROOT[cells]=$BASE_URL/dav/personal-files/bench
headers_file cells
if [[ $HTTPS == 1 ]]; then
  start_https_server
  log "creating a personal access token with the CLI (HTTPS server)"
  TOKEN=$(DATA_DIR=$HTTPS_DATA_DIR cells_cli admin user token -u "$ADMIN_LOGIN" -e 2h -l bench-dav -q)
  [[ -n $TOKEN ]] || die "the CLI printed no token (HTTPS server)"
  AUTH[cells-https]=$(basic "$ADMIN_LOGIN" "$TOKEN")
  ROOT[cells-https]=$HTTPS_URL/dav/personal-files/bench
  headers_file cells-https
fi

# Apache mod_dav, as PEERS.md A1, plus: no limit on keep-alive requests per connection or on
# the request body (since 2.4.54 the default limit is 1 GiB), and sendfile on. No access log.
APACHE_DIR=$WORK_DIR/apache
mkdir -p "$APACHE_DIR/dav" "$APACHE_DIR/lock" "$APACHE_DIR/run"
cp -r "$TREE/bench" "$APACHE_DIR/dav/"
chown -R www-data:www-data "$APACHE_DIR/dav" "$APACHE_DIR/lock"
chmod 711 "$APACHE_DIR"
APACHE_USER=bench
APACHE_PASSWORD=$(secret)
# htpasswd's default format (MD5, apr1), checked on every request: Apache has no auth cache.
printf '%s\n' "$APACHE_PASSWORD" | htpasswd -i -c "$APACHE_DIR/htpasswd" "$APACHE_USER" 2>/dev/null
chmod 644 "$APACHE_DIR/htpasswd"
APACHE_PORT=$(free_port)
cat >"$APACHE_DIR/httpd.conf" <<CONF
ServerRoot /etc/apache2
PidFile $APACHE_DIR/httpd.pid
DefaultRuntimeDir $APACHE_DIR/run
Listen 127.0.0.1:$APACHE_PORT
ServerName 127.0.0.1
User www-data
Group www-data
ErrorLog $APACHE_DIR/error.log
LogLevel warn
MaxKeepAliveRequests 0
LimitRequestBody 0
EnableSendfile On
LoadModule mpm_event_module $APACHE_MODULES/mod_mpm_event.so
LoadModule authz_core_module $APACHE_MODULES/mod_authz_core.so
LoadModule authn_core_module $APACHE_MODULES/mod_authn_core.so
LoadModule authn_file_module $APACHE_MODULES/mod_authn_file.so
LoadModule authz_user_module $APACHE_MODULES/mod_authz_user.so
LoadModule auth_basic_module $APACHE_MODULES/mod_auth_basic.so
LoadModule dav_module $APACHE_MODULES/mod_dav.so
LoadModule dav_fs_module $APACHE_MODULES/mod_dav_fs.so
LoadModule dav_lock_module $APACHE_MODULES/mod_dav_lock.so
LoadModule mime_module $APACHE_MODULES/mod_mime.so
TypesConfig /etc/mime.types
DAVLockDB $APACHE_DIR/lock/davlock
DocumentRoot $APACHE_DIR/dav
<Directory $APACHE_DIR/dav>
  Dav On
  AuthType Basic
  AuthName dav
  AuthUserFile $APACHE_DIR/htpasswd
  Require valid-user
</Directory>
CONF
log "starting Apache on 127.0.0.1:$APACHE_PORT"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin apache2 -f "$APACHE_DIR/httpd.conf" -k start >&2 ||
  die "apache2 -k start failed"
for ((i = 0; i < 50; i++)); do
  [[ -s $APACHE_DIR/httpd.pid ]] && break
  sleep 0.1
done
[[ -s $APACHE_DIR/httpd.pid ]] || die "Apache wrote no pid file"
APACHE_PID=$(cat "$APACHE_DIR/httpd.pid")
wait_http Apache "http://127.0.0.1:$APACHE_PORT/" "$APACHE_PID"
AUTH[apache]=$(basic "$APACHE_USER" "$APACHE_PASSWORD")
ROOT[apache]=http://127.0.0.1:$APACHE_PORT/bench
headers_file apache
APACHE_VERSION=$(apache2 -v | awk -F': *' '/^Server version/ { print $2 }')

# rclone serve webdav on a copy of the same files; user and password from the environment.
RCLONE_DIR=$WORK_DIR/rclone
mkdir -p "$RCLONE_DIR/root" "$RCLONE_DIR/cache"
cp -r "$TREE/bench" "$RCLONE_DIR/root/"
RCLONE_USER_NAME=bench
RCLONE_PASSWORD=$(secret)
RCLONE_PORT=$(free_port)
RCLONE_LOG=$RCLONE_DIR/rclone.log
log "starting rclone serve webdav on 127.0.0.1:$RCLONE_PORT"
# Not through a function: bash execs env, which execs rclone, so $! is rclone.
RCLONE_USER=$RCLONE_USER_NAME RCLONE_PASS=$RCLONE_PASSWORD \
  env -u AWS_CA_BUNDLE rclone serve webdav "$RCLONE_DIR/root" --addr "127.0.0.1:$RCLONE_PORT" \
  --config /dev/null --cache-dir "$RCLONE_DIR/cache" >"$RCLONE_LOG" 2>&1 &
RCLONE_PID=$!
wait_http rclone "http://127.0.0.1:$RCLONE_PORT/" "$RCLONE_PID"
AUTH[rclone]=$(basic "$RCLONE_USER_NAME" "$RCLONE_PASSWORD")
ROOT[rclone]=http://127.0.0.1:$RCLONE_PORT/bench
headers_file rclone
RCLONE_VERSION=$(rclone version 2>/dev/null | awk 'NR == 1 { print $2 }')

# dav NAME CURL_ARGS...: one checked request (curl -f) with NAME's credentials. cells-https's
# certificate is checked against itself (--cacert), as a client that was given it would.
dav() {
  local name=$1 tls=()
  shift
  [[ $name == cells-https ]] && tls=(--cacert "$HTTPS_CA")
  ccurl -f "${tls[@]}" -H "@${HEADERS[$name]}" "$@"
}

# --- cells gets the same files over WebDAV -------------------------------------------------------
log "cells: MKCOL bench/ and bench/many/, PUT bench/4k.bin"
dav cells -X MKCOL -o /dev/null "${ROOT[cells]}/" || die "cells: MKCOL bench/ failed"
dav cells -X MKCOL -o /dev/null "${ROOT[cells]}/many/" || die "cells: MKCOL bench/many/ failed"
dav cells -T "$TREE/bench/4k.bin" -o /dev/null "${ROOT[cells]}/4k.bin" || die "cells: PUT 4k.bin failed"
if [[ $HTTPS == 1 ]]; then
  log "cells-https: MKCOL bench/, PUT bench/4k.bin"
  dav cells-https -X MKCOL -o /dev/null "${ROOT[cells-https]}/" || die "cells-https: MKCOL bench/ failed"
  dav cells-https -T "$TREE/bench/4k.bin" -o /dev/null "${ROOT[cells-https]}/4k.bin" || die "cells-https: PUT 4k.bin failed"
fi

# One curl, 8 transfers at a time (--parallel), connections reused; one config file, so
# neither the 10,000 URLs nor the token are on a command line. -w prints each status code.
log "cells: PUT $ENTRIES files into bench/many/ (curl --parallel --parallel-max 8)"
PUT_CONFIG=$WORK_DIR/put-many.curlrc
{
  printf 'silent\nshow-error\nno-progress-meter\nnoproxy = "*"\nparallel\nparallel-max = 8\n'
  printf 'header = "@%s"\n' "${HEADERS[cells]}"
  printf 'header = "Expect:"\n'
  printf 'write-out = "%%{http_code}\\n"\n'
  for ((i = 1; i <= ENTRIES; i++)); do
    name=$(entry_name "$i")
    printf 'upload-file = "%s"\nurl = "%s"\noutput = "/dev/null"\n' \
      "$TREE/bench/many/$name" "${ROOT[cells]}/many/$name"
  done
} >"$PUT_CONFIG"
t0=$EPOCHREALTIME
curl -K "$PUT_CONFIG" >"$WORK_DIR/put-many.codes" 2>"$WORK_DIR/put-many.err" || true
t1=$EPOCHREALTIME
CREATE_S=$(elapsed "$t0" "$t1")
created=$(grep -c '^20[14]$' "$WORK_DIR/put-many.codes" || true)
if [[ $created -ne $ENTRIES ]]; then
  sort "$WORK_DIR/put-many.codes" | uniq -c | sed 's/^/    status /' >&2
  head -n 5 "$WORK_DIR/put-many.err" >&2
  die "cells: only $created of $ENTRIES PUTs into bench/many/ answered 201/204"
fi
log "cells: $ENTRIES files created in $CREATE_S s ($(ratio "$ENTRIES" "$CREATE_S" 0) PUT/s)"

# Every server serves the same 4 KiB file.
for s in "${MEASURED[@]}"; do
  dav "$s" -o "$WORK_DIR/4k.check" "${ROOT[$s]}/4k.bin" || die "$s: GET 4k.bin failed"
  cmp -s "$WORK_DIR/4k.check" "$TREE/bench/4k.bin" || die "$s: GET 4k.bin returned other bytes"
done

# --- 1. wrk on a 4 KiB file ------------------------------------------------------------------------
write_wrk_script # lib.sh: method and Authorization from the environment

# bench_wrk LABEL THREADS CONNECTIONS URL AUTHORIZATION: sets WRK_RPS and WRK_P99 (ms).
bench_wrk() {
  local label=$1 threads=$2 connections=$3 url=$4 authorization=$5 out non2xx requests
  out=$WORK_DIR/wrk.txt
  log "wrk: $label (GET $url, -t$threads -c$connections -d$DURATION)"
  BENCH_METHOD=GET BENCH_BODY="" BENCH_AUTHORIZATION=$authorization \
    wrk -t"$threads" -c"$connections" -d"$DURATION" --latency -s "$WRK_SCRIPT" "$url" >"$out" 2>&1 ||
    {
      cat "$out" >&2
      die "wrk failed ($label)"
    }
  sed 's/^/    /' "$out" >&2
  WRK_RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  requests=$(awk '/ requests in / { print $1 }' "$out")
  WRK_P99=$(awk '$1 == "99%" {
      v = $2
      if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
      else if (v ~ /ms$/) { sub(/ms$/, "", v) }
      else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
      else { sub(/s$/, "", v); v *= 1000 }
      printf "%.2f", v }' "$out")
  [[ -n $WRK_RPS && -n $requests && -n $WRK_P99 ]] || die "could not read wrk's output ($label)"
  ((requests > 0)) || die "$label: wrk completed no request"
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  if [[ -n $non2xx && $non2xx != 0 ]]; then
    die "$label: $non2xx of $requests answers were not 2xx/3xx"
  fi
  if grep -q 'Socket errors' "$out"; then
    die "$label: wrk reports socket errors ($(grep 'Socket errors' "$out" | sed 's/^ *//'))"
  fi
}

declare -A RPS P99
WIDE_THREADS=$((THREADS < 16 ? THREADS : 16))
for s in "${MEASURED[@]}"; do
  if [[ $s != cells-https ]]; then # issue 30 asks for 16 connections only
    bench_wrk "$s, 4 KiB GET, 1 connection" 1 1 "${ROOT[$s]}/4k.bin" "${AUTH[$s]}"
    RPS[$s,1]=$WRK_RPS P99[$s,1]=$WRK_P99
  fi
  bench_wrk "$s, 4 KiB GET, 16 connections" "$WIDE_THREADS" 16 "${ROOT[$s]}/4k.bin" "${AUTH[$s]}"
  RPS[$s,16]=$WRK_RPS P99[$s,16]=$WRK_P99
done

# --- 2. the large file: PUT, GET, and a checked download ---------------------------------------------
# Every server's big.bin stays in the page cache. On a fresh virtual machine the writer that
# first takes memory the guest never touched also pays for the host backing it, and cells
# writes first; so that memory is touched once before any PUT (as in sftp.sh): each server
# then writes into recycled pages.
log "warm-up: writing and removing $((${#MEASURED[@]} * SIZE_MB)) MiB"
dd if=/dev/zero of="$WORK_DIR/warm.bin" bs=1M count=$((${#MEASURED[@]} * SIZE_MB)) status=none
rm -f "$WORK_DIR/warm.bin"
declare -A PUT_MBS GET_MBS
for s in "${MEASURED[@]}"; do
  url=${ROOT[$s]}/big.bin
  log "$s: PUT $SIZE_MB MiB (curl -T)"
  # "Expect:" off: curl would otherwise wait for a 100 Continue before sending the body.
  read -r code seconds < <(dav "$s" -H 'Expect:' -T "$BIG" -o /dev/null -w '%{http_code} %{time_total}\n' "$url" ||
    echo "failed 0")
  [[ $code == 20[14] ]] || die "$s: PUT big.bin answered ${code:-nothing}, expected 201 or 204"
  PUT_MBS[$s]=$(mb_per_s "$SIZE_BYTES" "$seconds")
  log "$s: PUT answered $code in $seconds s (${PUT_MBS[$s]} MB/s)"
  log "$s: GET $SIZE_MB MiB (curl -o /dev/null)"
  read -r code bytes seconds < <(dav "$s" -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' "$url" ||
    echo "failed 0 0")
  [[ $code == 200 ]] || die "$s: GET big.bin answered ${code:-nothing}, expected 200"
  [[ $bytes -eq $SIZE_BYTES ]] || die "$s: GET big.bin gave $bytes bytes, not $SIZE_BYTES"
  GET_MBS[$s]=$(mb_per_s "$SIZE_BYTES" "$seconds")
  log "$s: GET answered $code in $seconds s (${GET_MBS[$s]} MB/s)"
  log "$s: checking the SHA-256 of another download (not timed)"
  sha=$(dav "$s" "$url" | sha256sum | cut -d' ' -f1) || die "$s: the checked GET of big.bin failed"
  [[ $sha == "$BIG_SHA" ]] || die "$s: the downloaded big.bin differs from the uploaded one"
done

# --- 3. PROPFIND Depth 1 on BENCH_ENTRIES files ---------------------------------------------------------
if [[ $PROPFIND_KIND == allprop ]]; then
  PROPFIND_BODY='<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
else
  PROPFIND_BODY='<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:displayname/><D:getlastmodified/><D:getcontentlength/><D:resourcetype/><D:getcontenttype/></D:prop></D:propfind>'
fi
# count_responses FILE: DAV:response elements with a 2xx propstat or status (streamed parse).
count_responses() {
  python3 - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET
ok = 0
for _, el in ET.iterparse(sys.argv[1]):
    if el.tag == "{DAV:}response":
        statuses = [s.text or "" for s in el.iter("{DAV:}status")]
        if any(" 2" in s for s in statuses):
            ok += 1
        el.clear()
print(ok)
PY
}
declare -A PF_MS PF_BYTES
for s in "${SERVERS[@]}"; do
  times=()
  for ((run = 1; run <= PROPFIND_RUNS; run++)); do
    log "$s: PROPFIND Depth 1 on bench/many/ ($ENTRIES entries, $PROPFIND_KIND), run $run of $PROPFIND_RUNS"
    read -r code bytes seconds < <(dav "$s" -X PROPFIND -H 'Depth: 1' -H 'Content-Type: application/xml' \
      --data-binary "$PROPFIND_BODY" -o "$WORK_DIR/propfind.xml" \
      -w '%{http_code} %{size_download} %{time_total}\n' "${ROOT[$s]}/many/" || echo "failed 0 0")
    [[ $code == 207 ]] || die "$s: PROPFIND answered ${code:-nothing}, expected 207"
    times+=("$seconds")
    log "$s: 207, $bytes bytes in $seconds s"
  done
  listed=$(count_responses "$WORK_DIR/propfind.xml") || die "$s: the PROPFIND answer is not well-formed XML"
  [[ $listed -eq $((ENTRIES + 1)) ]] || die "$s: PROPFIND listed $listed entries, expected $((ENTRIES + 1)) (the folder and its files)"
  median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  PF_MS[$s]=$(awk -v t="$median" 'BEGIN { printf "%.1f", t * 1000 }')
  PF_BYTES[$s]=$bytes
done

stop_peers

# --- summary --------------------------------------------------------------------------------------
# verdict HIGHER|LOWER CELLS APACHE RCLONE: whether cells is at least as good as the best peer.
verdict() {
  awk -v dir="$1" -v c="$2" -v a="$3" -v r="$4" 'BEGIN {
    if (dir == "higher") { best = (a > r ? a : r); ok = (c >= best); printf "%s (%.2fx best peer)", (ok ? "yes" : "NO"), (best > 0 ? c / best : 0) }
    else { best = (a < r ? a : r); ok = (c <= best); printf "%s (%.2fx best peer)", (ok ? "yes" : "NO"), (c > 0 ? best / c : 0) } }'
}
row() { printf '%-34s %12s %12s %12s  %s\n' "$@"; }
# line LABEL higher|lower CELLS APACHE RCLONE: one table line with its verdict.
line() { row "$1" "$3" "$4" "$5" "$(verdict "$2" "$3" "$4" "$5")"; }
kib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1024 }'; }
CAT_RATIO=$(ratio "${GET_MBS[cells]}" "$CAT_MBS" 2)
LOOP_RATIO=$(ratio "${GET_MBS[cells]}" "$LOOP_MBS" 2)
LOOP_VERDICT=$(awk -v r="$LOOP_RATIO" 'BEGIN { print (r >= 0.7 ? "yes" : "NO") }')
{
  printf '\n== cells bench/dav.sh: WebDAV, cells vs Apache mod_dav vs rclone serve webdav ==\n'
  print_context
  printf 'peers:   Apache %s (mpm_event, mod_dav_fs, htpasswd MD5); rclone %s (serve webdav)\n' \
    "$APACHE_VERSION" "$RCLONE_VERSION"
  printf 'load:    %s at the start, %s at the end (1-minute load average)\n' "$LOAD_START" "$(cut -d' ' -f1 /proc/loadavg)"
  printf 'sizes:   4 KiB GET; %s MiB PUT/GET; PROPFIND Depth 1 (%s) on %s files, median of %s; wrk -d%s\n\n' \
    "$SIZE_MB" "$PROPFIND_KIND" "$ENTRIES" "$PROPFIND_RUNS" "$DURATION"
  row "measure" "cells" "apache" "rclone" "cells >= best peer?"
  row "----------------------------------" "------------" "------------" "------------" "------------------------"
  line "4 KiB GET, -t1 -c1, req/s" higher "${RPS[cells,1]}" "${RPS[apache,1]}" "${RPS[rclone,1]}"
  line "4 KiB GET, -t1 -c1, p99 ms" lower "${P99[cells,1]}" "${P99[apache,1]}" "${P99[rclone,1]}"
  line "4 KiB GET, -t$WIDE_THREADS -c16, req/s" higher "${RPS[cells,16]}" "${RPS[apache,16]}" "${RPS[rclone,16]}"
  line "4 KiB GET, -t$WIDE_THREADS -c16, p99 ms" lower "${P99[cells,16]}" "${P99[apache,16]}" "${P99[rclone,16]}"
  line "$SIZE_MB MiB PUT (curl -T), MB/s" higher "${PUT_MBS[cells]}" "${PUT_MBS[apache]}" "${PUT_MBS[rclone]}"
  line "$SIZE_MB MiB GET (curl -o), MB/s" higher "${GET_MBS[cells]}" "${GET_MBS[apache]}" "${GET_MBS[rclone]}"
  row "  cat file over loopback TCP, MB/s" "$LOOP_MBS" "" "" "cells GET = ${LOOP_RATIO}x: $LOOP_VERDICT (>= 0.7)"
  row "  cat file > /dev/null, MB/s" "$CAT_MBS" "" "" "cells GET = ${CAT_RATIO}x (reference: no network)"
  line "PROPFIND $ENTRIES entries, ms" lower "${PF_MS[cells]}" "${PF_MS[apache]}" "${PF_MS[rclone]}"
  row "PROPFIND answer, KiB" "$(kib "${PF_BYTES[cells]}")" "$(kib "${PF_BYTES[apache]}")" "$(kib "${PF_BYTES[rclone]}")" "(size only)"
  printf '\ncells: %s files created over WebDAV in %s s (%s PUT/s, curl --parallel-max 8); the peers got them on disk.\n' \
    "$ENTRIES" "$CREATE_S" "$(ratio "$ENTRIES" "$CREATE_S" 0)"
  printf 'cells fsyncs every upload before it answers; Apache and rclone do not. rclone caches directory\n'
  printf 'listings (--dir-cache-time 5m), so its PROPFIND runs after the first one read no disk.\n'
  printf 'MB/s = 10^6 bytes per second. All servers, wrk and curl share %s CPUs: compare within one run.\n' \
    "$(nproc 2>/dev/null || echo '?')"
  printf 'Targets (issue 5, acceptance 5): cells >= the best peer on every line; 1 GiB GET >= 70 %% of cat over loopback.\n'
  if [[ $HTTPS == 1 ]]; then
    printf '\n== HTTPS (BENCH_HTTPS=1): a second cells with --tls-self-signed, run right after cells over HTTP ==\n'
    https_header
    https_line "4 KiB GET, -t$WIDE_THREADS -c16, req/s" higher "${RPS[cells,16]}" "${RPS[cells-https,16]}"
    https_line "4 KiB GET, -t$WIDE_THREADS -c16, p99 ms" lower "${P99[cells,16]}" "${P99[cells-https,16]}"
    https_line "$SIZE_MB MiB PUT (curl -T), MB/s" higher "${PUT_MBS[cells]}" "${PUT_MBS[cells-https]}"
    https_line "$SIZE_MB MiB GET (curl -o), MB/s" higher "${GET_MBS[cells]}" "${GET_MBS[cells-https]}"
    printf 'curl verifies the certificate (--cacert DATA/tls/self-signed-cert.pem); wrk does not verify.\n'
    printf 'Target (issue 30, acceptance 3): HTTPS costs less than 30 %% on every line.\n'
  fi
}
