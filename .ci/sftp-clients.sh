#!/usr/bin/env bash
# Real SFTP clients against the server's SFTP port, the host key pinned from
# `cells admin sftp host-key` (StrictHostKeyChecking=yes):
#   - OpenSSH sftp (through sshpass) as admin with a personal access token: put a large file,
#     ls, rename, get it back (same SHA-256), rm; the same short session with the password and
#     with an OAuth access token (the JWT of POST /a/frontend/session);
#   - a wrong password and another user's token are refused;
#   - OpenSSH sftp with a registered Ed25519 key (cells admin user add-key), then removed;
#   - rclone's SFTP backend copies 1,000 small files and the large file up and back, with
#     `rclone check` clean and identical trees.
# SFTP_BIG_MB sets the large file's size (default 1024). The last line is
# `sftp clients: N passed, M failed`; the exit status is 1 if any check failed.
set -uo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
big_mb="${SFTP_BIG_MB:-1024}"
missing=()
command -v sftp >/dev/null || missing+=(openssh-client)
command -v sshpass >/dev/null || missing+=(sshpass)
command -v rclone >/dev/null || missing+=(rclone)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
set -e
start_cells sftp-clients
set +e
passed=0
failed=0
failures=()

# check NAME COMMAND...: run one check in a subshell (set -e inside), report PASS or FAIL.
check() {
    local name="$1"
    shift
    if (set -e; "$@"); then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

# Pin the host key the way a user would: from the CLI, into known_hosts.
host_key=$("$bin" admin sftp host-key --data "$work/data")
read -r key_type key_data _ <<<"${host_key%%$'\n'*}"
printf '[127.0.0.1]:%s %s %s\n' "$sftp_port" "$key_type" "$key_data" >"$work/known_hosts"

# sftp_as LOGIN SECRET: run the batch on stdin as LOGIN with SECRET as the password.
sftp_as() {
    sshpass -p "$2" sftp -P "$sftp_port" -o BatchMode=no -o PubkeyAuthentication=no \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" \
        -o ConnectTimeout=10 -b - "$1@127.0.0.1"
}

mkdir -p "$work/files"
head -c "${big_mb}M" /dev/urandom >"$work/files/big.bin"
big_sha=$(sha256sum <"$work/files/big.bin")

openssh_pat() {
    local start end
    start=$(date +%s.%N)
    printf 'cd personal-files\nput %s big.bin\nls -l\nmkdir moved\nrename big.bin moved/big.bin\nls -l moved\n' \
        "$work/files/big.bin" | sftp_as admin "$token" >"$work/pat.log"
    end=$(date +%s.%N)
    grep -q 'big.bin' "$work/pat.log"
    printf 'put %s MiB in %.1f s\n' "$big_mb" "$(echo "$end - $start" | bc)"
    start=$(date +%s.%N)
    printf 'get personal-files/moved/big.bin %s\n' "$work/files/back.bin" | sftp_as admin "$token" >/dev/null
    end=$(date +%s.%N)
    printf 'get %s MiB in %.1f s\n' "$big_mb" "$(echo "$end - $start" | bc)"
    [[ $(sha256sum <"$work/files/back.bin") == "$big_sha" ]]
    rm -f "$work/files/back.bin"
    printf 'rm personal-files/moved/big.bin\nrmdir personal-files/moved\nls personal-files\n' |
        sftp_as admin "$token" >"$work/rm.log"
    ! grep -v '^sftp>' "$work/rm.log" | grep -q moved
}

# short_session LOGIN SECRET LABEL: put -f (synced: fsync@openssh.com), ls, get, rm of a small
# file.
short_session() {
    printf 'hello from %s\n' "$3" >"$work/files/$3.txt"
    printf 'put -f %s personal-files/%s.txt\nls personal-files\nget personal-files/%s.txt %s\nrm personal-files/%s.txt\n' \
        "$work/files/$3.txt" "$3" "$3" "$work/files/$3.back" "$3" | sftp_as "$1" "$2" >"$work/$3.log"
    cmp "$work/files/$3.txt" "$work/files/$3.back"
}

oauth_session() {
    local jwt
    jwt=$(curl -fsS -X POST "http://127.0.0.1:$port/a/frontend/session" -H 'Content-Type: application/json' \
        -d "{\"AuthInfo\":{\"type\":\"credentials\",\"login\":\"admin\",\"password\":\"$admin_password\"}}" | jq -r .JWT)
    [[ $jwt == eyJ* ]]
    short_session admin "$jwt" oauth
}

refused() {
    "$bin" admin user create -u other -p other-password-123 --data "$work/data" >/dev/null
    ! printf 'ls\n' | sftp_as admin wrong-password >/dev/null 2>&1
    ! printf 'ls\n' | sftp_as other "$token" >/dev/null 2>&1
    printf 'ls\n' | sftp_as other other-password-123 >/dev/null
}

# A registered Ed25519 key logs in with OpenSSH's own key authentication (no password), and
# stops working once removed.
key_session() {
    ssh-keygen -q -t ed25519 -N '' -C 'ci@cells' -f "$work/id_ed25519"
    "$bin" admin user add-key -u admin --file "$work/id_ed25519.pub" --data "$work/data" >/dev/null
    local by_key=(sftp -P "$sftp_port" -i "$work/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes
        -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o StrictHostKeyChecking=yes
        -o UserKnownHostsFile="$work/known_hosts" -o ConnectTimeout=10 -b - admin@127.0.0.1)
    printf 'hello from a key\n' >"$work/files/key.txt"
    printf 'put %s personal-files/key.txt\nget personal-files/key.txt %s\nrm personal-files/key.txt\n' \
        "$work/files/key.txt" "$work/files/key.back" | "${by_key[@]}" >"$work/key.log"
    cmp "$work/files/key.txt" "$work/files/key.back"
    local fingerprint
    fingerprint=$(ssh-keygen -l -E sha256 -f "$work/id_ed25519.pub" | awk '{print $2}')
    "$bin" admin user remove-key -u admin "$fingerprint" --data "$work/data" >/dev/null
    ! printf 'ls\n' | "${by_key[@]}" >/dev/null 2>&1
}

rclone_copy() {
    local start end
    mkdir -p "$work/up" "$work/down"
    small_tree "$work/up"
    ln "$work/files/big.bin" "$work/up/big.bin"
    export RCLONE_CONFIG_CELLS_TYPE=sftp
    export RCLONE_CONFIG_CELLS_HOST=127.0.0.1
    export RCLONE_CONFIG_CELLS_PORT="$sftp_port"
    export RCLONE_CONFIG_CELLS_USER=admin
    export RCLONE_CONFIG_CELLS_KNOWN_HOSTS_FILE="$work/known_hosts"
    # No shell on the server: rclone must not try to run md5sum/sha1sum there.
    export RCLONE_CONFIG_CELLS_SHELL_TYPE=none
    export RCLONE_CONFIG_CELLS_DISABLE_HASHCHECK=true
    RCLONE_CONFIG_CELLS_PASS=$(rclone obscure "$token")
    export RCLONE_CONFIG_CELLS_PASS
    rc() { env -u AWS_CA_BUNDLE rclone --config /dev/null --retries 1 "$@"; }
    start=$(date +%s.%N)
    rc copy --transfers 8 "$work/up" cells:personal-files/sync
    rc check "$work/up" cells:personal-files/sync
    rc copy --transfers 8 cells:personal-files/sync "$work/down"
    end=$(date +%s.%N)
    diff -r "$work/up" "$work/down"
    [[ $(sha256sum <"$work/down/big.bin") == "$big_sha" ]]
    printf 'rclone: up, check and down in %.1f s, trees identical\n' "$(echo "$end - $start" | bc)"
}

server_log_clean() {
    ! grep -E 'panicked|ERROR' "$work/server.log"
}

echo "== OpenSSH sftp"
check "sftp with a PAT: put ${big_mb} MiB, ls, rename, get (same SHA-256), rm" openssh_pat
check "sftp with the password: put -f, ls, get, rm" short_session admin "$admin_password" password
check "sftp with an OAuth access token: put -f, ls, get, rm" oauth_session
check "wrong password and another user's token refused" refused
check "sftp with a registered Ed25519 key (add-key), refused once removed" key_session
echo "== rclone SFTP backend"
check "rclone: 1,000 files and ${big_mb} MiB up, check, down" rclone_copy
check "server log has no panic and no error" server_log_clean
for name in "${failures[@]}"; do echo "failed: $name"; done
echo "sftp clients: $passed passed, $failed failed"
((failed == 0))
