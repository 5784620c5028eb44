#!/usr/bin/env bash
# Real clients in a workspace (issue 34): group `team` with alice in it, workspace `team`
# granted to the group `rw`, alice's personal access token; bob is in no group.
#   - litmus against /dav/team/ with the token of admin, granted rw on team: every suite 100%
#     (as a standard user, the locks suite's lock on a folder is refused: a lock on a shared
#     folder is for administrators, README "Security model");
#   - rclone over WebDAV (cells:team/…) and over S3 (io/team/…): 1,000 small files up, check
#     clean, and back, trees identical;
#   - the aws CLI: s3 cp up, s3 ls, s3 cp down of s3://io/team/…;
#   - OpenSSH sftp into /team: put, ls, get, same SHA-256;
#   - bob sees no `team` anywhere (PROPFIND /dav/, s3 ls s3://io/, sftp ls /) and gets 404;
#   - a 1M quota on team: curl PUT, aws s3 cp and sftp put of 2 MiB are refused, nothing left.
# The last line is `workspace clients: N passed, M failed`; the exit status is 1 on a failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=.ci/lib.sh
source "$here/lib.sh"
venv="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}/s3-venv"
missing=()
command -v litmus >/dev/null || missing+=(litmus)
command -v rclone >/dev/null || missing+=(rclone)
command -v sftp >/dev/null || missing+=(openssh-client)
command -v sshpass >/dev/null || missing+=(sshpass)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! { [[ -x "$venv/bin/aws" ]] && "$venv/bin/python" -c 'import awscli' 2>/dev/null; }; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check awscli boto3 requests
fi
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
set -e
start_cells workspaces
set +e
cli() { "$bin" "$@" --data "$work/data"; }
cli admin user create -u alice -p alice-password >/dev/null
cli admin user create -u bob -p bob-password >/dev/null
cli admin group create team >/dev/null
cli admin group add-user team -u alice >/dev/null
cli admin workspace create team --label Team >/dev/null
cli admin workspace grant team -g team --rights rw >/dev/null
cli admin workspace grant team -u admin --rights rw >/dev/null
alice=$(cli admin user token -u alice -e 2h -q)
bob=$(cli admin user token -u bob -e 2h -q)
url="http://127.0.0.1:$port"
passed=0
failed=0
check() {
    local name="$1"
    shift
    if (set -e; "$@"); then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}
rc() { env -u AWS_CA_BUNDLE rclone --config /dev/null "$@"; }
aws_as() { AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY=gatewaysecret "$venv/bin/aws" --endpoint-url "$url" --only-show-errors "${@:2}"; }
host_key=$(cli admin sftp host-key)
read -r key_type key_data _ <<<"${host_key%%$'\n'*}"
printf '[127.0.0.1]:%s %s %s\n' "$sftp_port" "$key_type" "$key_data" >"$work/known_hosts"
sftp_as() {
    sshpass -p "$2" sftp -P "$sftp_port" -o BatchMode=no -o PubkeyAuthentication=no \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" \
        -o ConnectTimeout=10 -b - "$1@127.0.0.1"
}
mkdir -p "$work/up"
small_tree "$work/up"

litmus_team() {
    mkdir -p "$work/litmus" && cd "$work/litmus"
    litmus -k "$url/dav/team/" admin "$token" >"$work/litmus.log" 2>&1 || true
    grep -a "summary for" "$work/litmus.log"
    [[ $(grep -a -c "summary for .* 100.0%" "$work/litmus.log") -eq 5 ]]
}

rclone_dav() {
    export RCLONE_CONFIG_CELLS_TYPE=webdav RCLONE_CONFIG_CELLS_URL="$url/dav" RCLONE_CONFIG_CELLS_VENDOR=other
    export RCLONE_CONFIG_CELLS_USER=alice
    RCLONE_CONFIG_CELLS_PASS=$(rclone obscure "$alice")
    export RCLONE_CONFIG_CELLS_PASS
    rc copy --transfers 8 "$work/up" cells:team/dav
    rc check "$work/up" cells:team/dav
    rc copy --transfers 8 cells:team/dav "$work/dav-down"
    diff -r "$work/up" "$work/dav-down"
}

rclone_s3() {
    export RCLONE_CONFIG_IO_TYPE=s3 RCLONE_CONFIG_IO_PROVIDER=Other RCLONE_CONFIG_IO_ENDPOINT="$url"
    export RCLONE_CONFIG_IO_ACCESS_KEY_ID="$alice" RCLONE_CONFIG_IO_SECRET_ACCESS_KEY=gatewaysecret
    export RCLONE_CONFIG_IO_REGION=us-east-1 RCLONE_CONFIG_IO_FORCE_PATH_STYLE=true
    rc copy --transfers 8 --retries 1 "$work/up" io:io/team/s3
    rc check "$work/up" io:io/team/s3
    rc copy --transfers 8 io:io/team/s3 "$work/s3-down"
    diff -r "$work/up" "$work/s3-down"
}

aws_cli() {
    printf 'from the aws CLI\n' >"$work/aws.txt"
    aws_as "$alice" s3 cp "$work/aws.txt" s3://io/team/aws.txt
    aws_as "$alice" s3 ls s3://io/team/ | grep -q aws.txt
    aws_as "$alice" s3 cp s3://io/team/aws.txt "$work/aws-back.txt"
    cmp "$work/aws.txt" "$work/aws-back.txt"
}

openssh_sftp() {
    head -c 3M /dev/urandom >"$work/sftp.bin"
    printf 'cd team\nput %s sftp.bin\nls -l\nget sftp.bin %s\n' "$work/sftp.bin" "$work/sftp-back.bin" |
        sftp_as alice "$alice" >"$work/sftp.log"
    grep -q sftp.bin "$work/sftp.log"
    cmp "$work/sftp.bin" "$work/sftp-back.bin"
}

bob_sees_nothing() {
    ! curl -fsS -u "bob:$bob" -X PROPFIND -H 'Depth: 1' "$url/dav/" | grep -q '/dav/team/'
    [[ $(curl -s -o /dev/null -w '%{http_code}' -u "bob:$bob" "$url/dav/team/aws.txt") == 404 ]]
    ! aws_as "$bob" s3 ls s3://io/ | grep -q team
    [[ -z $(aws_as "$bob" s3 ls s3://io/team/ 2>/dev/null) ]]
    printf 'ls /\n' | sftp_as bob "$bob" >"$work/bob.log"
    ! grep -v '^sftp>' "$work/bob.log" | grep -q team
    ! printf 'get /team/aws.txt %s\n' "$work/stolen" | sftp_as bob "$bob" >/dev/null 2>&1
    [[ ! -e "$work/stolen" ]]
}

quota_refuses() {
    cli admin workspace set-quota team 1M >/dev/null
    head -c 2M /dev/urandom >"$work/two.bin"
    [[ $(curl -s -o /dev/null -w '%{http_code}' -u "alice:$alice" -T "$work/two.bin" "$url/dav/team/two-dav.bin") == 507 ]]
    ! aws_as "$alice" s3 cp "$work/two.bin" s3://io/team/two-s3.bin 2>"$work/aws-quota.log"
    grep -q InsufficientStorage "$work/aws-quota.log"
    ! printf 'put %s /team/two-sftp.bin\n' "$work/two.bin" | sftp_as alice "$alice" >"$work/sftp-quota.log" 2>&1
    for name in two-dav two-s3 two-sftp; do
        [[ $(curl -s -o /dev/null -w '%{http_code}' -u "alice:$alice" "$url/dav/team/$name.bin") == 404 ]]
    done
    cli admin workspace set-quota team none >/dev/null
}

check "litmus on /dav/team/" litmus_team
check "rclone over WebDAV in team (1,000 files)" rclone_dav
check "rclone over S3 in io/team (1,000 files)" rclone_s3
check "aws CLI in s3://io/team/" aws_cli
check "OpenSSH sftp into /team" openssh_sftp
check "a user without a grant sees no team on any protocol" bob_sees_nothing
check "a quota refuses WebDAV, S3 and SFTP uploads and leaves nothing" quota_refuses
if grep -q -E 'panicked| 500 ' "$work/server.log"; then
    echo "FAIL the server log has a panic or a 500"
    grep -E 'panicked| 500 ' "$work/server.log" | head
    failed=$((failed + 1))
fi
echo "workspace clients: $passed passed, $failed failed"
((failed == 0))
