#!/usr/bin/env bash
# Real WebDAV clients against /dav with a personal access token as the password:
# rclone copies 1,000 small files and a large file up and back (`rclone check` clean, SHA-256
# equal), and cadaver runs a scripted put/get/mkcol/move session.
# DAV_BIG_MB sets the large file's size (default 1024).
set -euo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
big_mb="${DAV_BIG_MB:-1024}"
missing=()
command -v rclone >/dev/null || missing+=(rclone)
command -v cadaver >/dev/null || missing+=(cadaver)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
start_cells dav-clients
passed=0

echo "== rclone: 1,000 small files and a ${big_mb} MiB file"
mkdir -p "$work/up" "$work/down"
small_tree "$work/up"
head -c "${big_mb}M" /dev/urandom >"$work/up/big.bin"
export RCLONE_CONFIG_CELLS_TYPE=webdav
export RCLONE_CONFIG_CELLS_URL="http://127.0.0.1:$port/dav"
export RCLONE_CONFIG_CELLS_VENDOR=other
export RCLONE_CONFIG_CELLS_USER=admin
RCLONE_CONFIG_CELLS_PASS=$(rclone obscure "$token")
export RCLONE_CONFIG_CELLS_PASS
rc() { env -u AWS_CA_BUNDLE rclone --config /dev/null "$@"; }
start=$(date +%s.%N)
rc copy --transfers 8 "$work/up" cells:personal-files/sync
rc check "$work/up" cells:personal-files/sync
rc copy --transfers 8 cells:personal-files/sync "$work/down"
end=$(date +%s.%N)
diff -r "$work/up" "$work/down"
[[ $(sha256sum <"$work/up/big.bin") == $(sha256sum <"$work/down/big.bin") ]]
printf 'rclone: up, check and down in %.1f s, trees identical\n' "$(echo "$end - $start" | bc)"
passed=$((passed + 1))

echo "== cadaver: put, ls, get, mkcol, move"
mkdir -p "$work/home" "$work/cad"
printf 'machine 127.0.0.1\nlogin admin\npassword %s\n' "$token" >"$work/home/.netrc"
chmod 600 "$work/home/.netrc"
printf 'hello from cadaver\n' >"$work/cad/f"
cd "$work/cad"
printf 'put f\nls\nget f f2\nmkcol sub\nmove f sub/f\nls sub\nquit\n' |
    HOME="$work/home" cadaver "http://127.0.0.1:$port/dav/personal-files/" >"$work/cadaver.log" 2>&1
cmp f f2
if grep -qi "failed" "$work/cadaver.log" || [[ $(grep -c "succeeded" "$work/cadaver.log") -lt 5 ]]; then
    cat "$work/cadaver.log"
    exit 1
fi
curl -fsS -u "admin:$token" "http://127.0.0.1:$port/dav/personal-files/sub/f" | grep -q "hello from cadaver"
echo "cadaver: session done, moved file readable"
passed=$((passed + 1))
echo "dav clients: $passed passed, 0 failed"
