#!/usr/bin/env bash
# Real S3 clients against the S3 gateway (path style, endpoint = server root, bucket `io`, keys
# `<workspace>/<path>`, region us-east-1):
#   - aws CLI: the seed recipe (s3 cp up, s3 ls, s3 cp down, s3 rm) with a personal access token
#     and the secret `gatewaysecret`, again with an OAuth access token (device grant), and again
#     with the PAT's own S3 key pair (`admin user token --s3`); ListBuckets and the bucket root;
#     s3 sync up and down, server-side s3 cp / s3 mv, s3 rm --recursive.
#   - boto3 (.ci/s3/check.py): put/get/list/copy/delete, metadata, ranges, multipart and abort,
#     UploadPartCopy, presigned GET/PUT and expiry, wrong secret, folders as CommonPrefixes,
#     pagination, versions; a short subset with the OAuth token and with the S3 key pair.
#   - s3cmd: put, ls, get, del, and ls s3://.
#   - rclone S3 backend: 1,000 small files and a large file up and back (`rclone check` clean,
#     trees identical, SHA-256 equal), with timings, and no retries.
#   - the server's log has no 500 and no panic (clients retry a 500 and would hide it).
# Every check runs even after a failure; the last line is `s3 clients: N passed, M failed`, and the
# exit status is 1 if any check failed.
#
#   CELLS_BIN      the server binary (see lib.sh)
#   S3_BIG_MB      the large file's size in MiB (default 1024)
#   CELLS_CI_CACHE where the Python venv (awscli, boto3, requests) is kept between runs
#                  (default /var/tmp/cells-ci-cache; the venv is s3-venv in it)
#   S3_ENDPOINT, S3_TOKEN, S3_SECRET
#                  when all three are set, no server is started: the clients run against that
#                  endpoint with that key pair, and the OAuth and `--s3` key pair checks are
#                  skipped (for trying the clients on a peer such as `rclone serve s3`, whose
#                  data dir must hold io/personal-files/ and io/common-files/)
#   S3_SKIP        comma-separated boto3 check names to skip (e.g. ListObjectVersions on a peer)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=.ci/lib.sh
source "$here/lib.sh"
big_mb="${S3_BIG_MB:-1024}"
venv="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}/s3-venv"

# --- tools -------------------------------------------------------------------------------------
missing=()
command -v rclone >/dev/null || missing+=(rclone)
command -v s3cmd >/dev/null || missing+=(s3cmd)
command -v bc >/dev/null || missing+=(bc)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! { [[ -x "$venv/bin/aws" ]] && "$venv/bin/python" -c 'import awscli, boto3, requests' 2>/dev/null; }; then
    echo "== creating the Python venv $venv (awscli, boto3, requests)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check awscli boto3 requests
fi
py="$venv/bin/python"
aws="$venv/bin/aws"

# Keep the clients away from the machine's own AWS settings and from the EC2 metadata address.
export AWS_EC2_METADATA_DISABLED=true
export AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL

# --- server ------------------------------------------------------------------------------------
if [[ -n "${S3_ENDPOINT:-}" && -n "${S3_TOKEN:-}" && -n "${S3_SECRET:-}" ]]; then
    peer=1
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    endpoint="${S3_ENDPOINT%/}"
    token="$S3_TOKEN"
    secret="$S3_SECRET"
    echo "== clients against $endpoint (no cells server started; OAuth and --s3 key pair checks skipped)"
else
    peer=0
    start_cells s3-clients
    endpoint="http://127.0.0.1:$port"
    secret=gatewaysecret
    echo "== cells on $endpoint"
fi
host="${endpoint#http://}"
echo "tools: $("$aws" --version 2>&1), boto3 $("$py" -c 'import boto3; print(boto3.__version__)')," \
    "$(rclone version | head -n 1), $(s3cmd --version)"

passed=0
failed=0
failures=()
n=0
# check NAME COMMAND...: runs COMMAND in a subshell with `set -e`, its output in a log that is
# shown only on failure; the command may write lines for the report to fd 3.
check() {
    local name=$1 rc=0 t0 t1
    shift
    n=$((n + 1))
    local log="$work/check-$n.log"
    t0=$(date +%s.%N)
    set +e
    (
        set -e
        "$@"
    ) 3>&1 >"$log" 2>&1
    rc=$?
    set -e
    t1=$(date +%s.%N)
    if ((rc == 0)); then
        passed=$((passed + 1))
        printf 'ok   %s (%.1f s)\n' "$name" "$(echo "$t1 - $t0" | bc)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL %s (exit %s); its output:\n' "$name" "$rc"
        tail -n 60 "$log" | sed 's/^/    | /'
    fi
}
# fail_check NAME REASON: counts a check that could not even run.
fail_check() {
    failed=$((failed + 1))
    failures+=("$1")
    printf 'FAIL %s: %s\n' "$1" "$2"
}

# --- aws CLI -----------------------------------------------------------------------------------
# aws_as ACCESS_KEY SECRET ARGS...
aws_as() {
    local akid=$1 sk=$2
    shift 2
    AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="$sk" "$aws" --endpoint-url "$endpoint" "$@"
}

aws_buckets() {
    aws_as "$token" "$secret" s3 ls | tee "$work/aws-buckets.txt"
    grep -Eq ' io$' "$work/aws-buckets.txt"
    aws_as "$token" "$secret" s3 ls s3://io/ | tee "$work/aws-root.txt"
    grep -q 'PRE personal-files/$' "$work/aws-root.txt"
    grep -q 'PRE common-files/$' "$work/aws-root.txt"
}

# aws_recipe ACCESS_KEY SECRET NAME: the seed recipe with file NAME in personal-files.
aws_recipe() {
    local akid=$1 sk=$2 f=$3 rc=0
    local dir="$work/aws-$f"
    mkdir -p "$dir"
    cd "$dir"
    printf 'hello from the aws cli (%s)\n' "$f" >"$f"
    aws_as "$akid" "$sk" s3 cp "$f" "s3://io/personal-files/$f"
    aws_as "$akid" "$sk" s3 ls s3://io/personal-files/ | tee ls-before
    grep -Eq " $f\$" ls-before || { echo "s3 ls does not list $f"; exit 1; }
    aws_as "$akid" "$sk" s3 cp "s3://io/personal-files/$f" back
    cmp "$f" back
    aws_as "$akid" "$sk" s3 rm "s3://io/personal-files/$f"
    # `s3 ls` exits 1 with nothing on stderr when nothing matches.
    aws_as "$akid" "$sk" s3 ls s3://io/personal-files/ >ls-after 2>ls-err || rc=$?
    cat ls-after ls-err
    if ((rc != 0)) && { ((rc != 1)) || [[ -s ls-err ]]; }; then
        echo "s3 ls after rm failed ($rc)"
        exit 1
    fi
    if grep -Eq " $f\$" ls-after; then
        echo "s3 ls still lists $f after s3 rm"
        exit 1
    fi
}

# aws_sync: s3 sync up (one file big enough for multipart), again (nothing to send), down; then
# server-side s3 cp and s3 mv (CopyObject, and UploadPartCopy for the big one) and s3 rm --recursive.
aws_sync() {
    local d="$work/aws-sync" u=s3://io/personal-files/awssync
    mkdir -p "$d/up/sub" "$d/down"
    for i in $(seq 1 10); do printf 'sync %s\n' "$i" >"$d/up/s$i.txt"; done
    printf 'nested\n' >"$d/up/sub/n.txt"
    head -c 9M /dev/urandom >"$d/up/sub/nine.bin"
    # S3 dates are whole seconds, and aws s3 sync re-sends a file modified later than the
    # object's date: a file written in the same second as its upload would be sent again,
    # against S3 itself too. Date the fixtures two seconds back.
    find "$d/up" -type f -exec touch -d '2 seconds ago' {} +
    aws_as "$token" "$secret" s3 sync --no-progress "$d/up" "$u/"
    aws_as "$token" "$secret" s3 sync --no-progress "$d/up" "$u/" | tee "$d/again"
    [[ ! -s "$d/again" ]] || { echo "second s3 sync sent files again"; exit 1; }
    aws_as "$token" "$secret" s3 sync --no-progress "$u/" "$d/down"
    diff -r "$d/up" "$d/down"
    aws_as "$token" "$secret" s3 cp --no-progress "$u/s1.txt" "$u/copied.txt"
    aws_as "$token" "$secret" s3 cp --no-progress "$u/sub/nine.bin" "$u/nine-copy.bin"
    aws_as "$token" "$secret" s3 mv --no-progress "$u/copied.txt" "$u/moved.txt"
    aws_as "$token" "$secret" s3 cp --no-progress "$u/moved.txt" "$d/moved.txt"
    aws_as "$token" "$secret" s3 cp --no-progress "$u/nine-copy.bin" "$d/nine-copy.bin"
    cmp "$d/up/s1.txt" "$d/moved.txt"
    cmp "$d/up/sub/nine.bin" "$d/nine-copy.bin"
    aws_as "$token" "$secret" s3 ls "$u/" | tee "$d/ls"
    grep -q ' moved.txt$' "$d/ls" || { echo "s3 ls does not list moved.txt"; exit 1; }
    if grep -q ' copied.txt$' "$d/ls"; then
        echo "s3 ls still lists copied.txt after s3 mv"
        exit 1
    fi
    aws_as "$token" "$secret" s3 rm --recursive "$u/"
    [[ -z $(aws_as "$token" "$secret" s3 ls --recursive "$u/" || true) ]] || { echo "left after rm --recursive"; exit 1; }
}

echo "== aws CLI"
check "aws: ListBuckets shows io, bucket root shows the workspaces" aws_buckets
check "aws: seed recipe with a PAT (cp up, ls, cp down, rm)" aws_recipe "$token" "$secret" f
check "aws: s3 sync up/again/down, server-side s3 cp and s3 mv, s3 rm --recursive" aws_sync

oauth_token=""
keypair=""
if ((peer == 0)); then
    if oauth_token=$("$py" "$here/s3/oauth_token.py" "$endpoint" admin "$admin_password" 2>"$work/oauth.err"); then
        echo "OAuth device grant: access token of ${#oauth_token} characters"
        check "aws: seed recipe with an OAuth access token" aws_recipe "$oauth_token" gatewaysecret f-oauth
    else
        oauth_token=""
        cat "$work/oauth.err"
        fail_check "OAuth device grant gives an access token" "see above"
    fi
    if keypair=$("$bin" admin user token -u admin -e 2h -l s3-keypair -q --s3 --data "$work/data" 2>"$work/keypair.err") &&
        [[ "$keypair" =~ ^cpak_[0-9a-f]{32}\ [^[:space:]]+$ ]]; then
        echo "S3 key pair: ${keypair%% *}"
        check "aws: seed recipe with the PAT's S3 key pair" aws_recipe "${keypair%% *}" "${keypair#* }" f-keypair
    else
        printf '%s\n' "$keypair"
        cat "$work/keypair.err"
        fail_check "admin user token --s3 prints ACCESS_KEY_ID SECRET" "output above is not 'cpak_<32 hex> SECRET'"
        keypair=""
    fi
fi

# --- boto3 -------------------------------------------------------------------------------------
# boto3 ARGS...: runs check.py, which reports one line per check and `RESULT passed failed`.
boto3() {
    local out="$work/boto3-$n.log" rc=0 result
    n=$((n + 1))
    "$py" "$here/s3/check.py" --endpoint "$endpoint" "$@" >"$out" 2>&1 || rc=$?
    grep -v '^RESULT ' "$out" || true
    result=$(grep '^RESULT ' "$out" | tail -n 1 || true)
    if [[ -z "$result" ]]; then
        fail_check "boto3 $*" "check.py exited $rc without a result"
        return
    fi
    read -r _ p f <<<"$result"
    passed=$((passed + p))
    failed=$((failed + f))
    if ((f > 0)); then
        while IFS= read -r line; do failures+=("${line#FAIL }"); done < <(grep '^FAIL ' "$out" | cut -d: -f1,2)
    fi
}

echo "== boto3"
boto3 --access-key "$token" --secret "$secret" --label PAT --skip "${S3_SKIP:-}"
if [[ -n "$oauth_token" ]]; then
    boto3 --access-key "$oauth_token" --secret gatewaysecret --label OAuth --mode smoke
fi
if [[ -n "$keypair" ]]; then
    boto3 --access-key "${keypair%% *}" --secret "${keypair#* }" --label "key pair" --mode smoke
fi

# --- s3cmd -------------------------------------------------------------------------------------
s3cmd_session() {
    local cfg="$work/s3cfg"
    cat >"$cfg" <<EOF
[default]
access_key = $token
secret_key = $secret
host_base = $host
host_bucket = $host
use_https = False
signature_v2 = False
EOF
    mkdir -p "$work/s3cmd"
    cd "$work/s3cmd"
    printf 'hello from s3cmd\n' >s3cmd.txt
    s3cmd -c "$cfg" put s3cmd.txt s3://io/personal-files/s3cmd.txt
    s3cmd -c "$cfg" ls s3://io/personal-files/ | tee ls-before
    grep -q ' s3://io/personal-files/s3cmd.txt$' ls-before || { echo "s3cmd ls does not list s3cmd.txt"; exit 1; }
    s3cmd -c "$cfg" get --force s3://io/personal-files/s3cmd.txt back.txt
    cmp s3cmd.txt back.txt
    s3cmd -c "$cfg" del s3://io/personal-files/s3cmd.txt
    s3cmd -c "$cfg" ls s3://io/personal-files/ | tee ls-after
    if grep -q ' s3://io/personal-files/s3cmd.txt$' ls-after; then
        echo "s3cmd ls still lists s3cmd.txt after del"
        exit 1
    fi
}

# s3cmd's own default bucket_location is US, and it signs ListBuckets with that region; AWS
# answers AuthorizationHeaderMalformed with <Region>, which s3cmd follows.
s3cmd_buckets() {
    s3cmd -c "$work/s3cfg" ls s3:// | tee "$work/s3cmd-buckets"
    grep -q ' s3://io$' "$work/s3cmd-buckets"
}

echo "== s3cmd"
check "s3cmd: put, ls, get, del" s3cmd_session
check "s3cmd: ls s3:// (ListBuckets with s3cmd's default region US)" s3cmd_buckets

# --- rclone ------------------------------------------------------------------------------------
export RCLONE_CONFIG_CELLS_TYPE=s3
export RCLONE_CONFIG_CELLS_PROVIDER=Other
export RCLONE_CONFIG_CELLS_ACCESS_KEY_ID="$token"
export RCLONE_CONFIG_CELLS_SECRET_ACCESS_KEY="$secret"
export RCLONE_CONFIG_CELLS_ENDPOINT="$endpoint"
export RCLONE_CONFIG_CELLS_REGION=us-east-1
export RCLONE_CONFIG_CELLS_FORCE_PATH_STYLE=true
# Debian's rclone 1.60 S3 backend fails on the AWS_CA_BUNDLE the environment may set. No retries:
# on loopback an error answer (say a 500) is a server bug, which retries would hide.
rc() { env -u AWS_CA_BUNDLE rclone --config /dev/null --retries 1 --low-level-retries 1 "$@"; }
# elapsed SINCE: seconds since SINCE (a `date +%s.%N`), one decimal.
elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $1" | bc)"; }

rclone_sync() {
    local t
    t=$(date +%s.%N)
    rc copy --transfers 8 "$work/up" cells:io/personal-files/s3sync
    echo "rclone: up in $(elapsed "$t") s" >&3
    t=$(date +%s.%N)
    rc check "$work/up" cells:io/personal-files/s3sync
    echo "rclone: check in $(elapsed "$t") s" >&3
    t=$(date +%s.%N)
    rc copy --transfers 8 cells:io/personal-files/s3sync "$work/down"
    echo "rclone: down in $(elapsed "$t") s" >&3
    diff -r "$work/up" "$work/down"
    [[ $(sha256sum <"$work/up/big.bin") == $(sha256sum <"$work/down/big.bin") ]]
    echo "rclone: trees identical, SHA-256 of big.bin equal" >&3
}

echo "== rclone: 1,000 small files and a ${big_mb} MiB file"
mkdir -p "$work/up" "$work/down"
small_tree "$work/up"
head -c "${big_mb}M" /dev/urandom >"$work/up/big.bin"
check "rclone: copy up, check, copy down (1,000 files + ${big_mb} MiB)" rclone_sync
rm -rf "$work/up" "$work/down"

# Clients retry a 500 on their own (awscli up to 5 times), so look for any in the server log too.
server_log_clean() {
    local pattern='InternalError|500 Internal Server Error|panicked'
    if grep -qE "$pattern" "$work/server.log"; then
        # The causes first (the server's own error lines), then the 500s as sent.
        grep -E 'ERROR cells|panicked' "$work/server.log" | head -n 15 || true
        grep -E "$pattern" "$work/server.log" | head -n 4
        echo "the server answered 500 or panicked: $(grep -cE "$pattern" "$work/server.log") log lines (first above)"
        exit 1
    fi
}
if ((peer == 0)); then
    check "server: no 500 and no panic in its log during the run" server_log_clean
fi

# --- summary -----------------------------------------------------------------------------------
if ((failed > 0)); then
    echo "== failed checks:"
    printf '  - %s\n' "${failures[@]}"
    if ((peer == 0)); then
        echo "== last lines of the server log:"
        tail -n 20 "$work/server.log" | sed 's/^/    | /'
    fi
fi
echo "s3 clients: $passed passed, $failed failed"
((failed == 0))
