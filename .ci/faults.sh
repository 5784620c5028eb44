#!/usr/bin/env bash
# Faults on a real binary (issue 31), driven by .ci/faults/drive.py:
#   - outage: our own PostgreSQL instance (never the shared one) stopped for 15 s under light
#     load on REST, WebDAV, S3 and SFTP;
#   - sigterm: SIGTERM during slow uploads on every protocol, one run where they fit the
#     --shutdown-timeout and one where the deadline cuts them;
#   - full: a real full disk, a 48 MiB tmpfs as the data dir (needs root to mount; says so and
#     skips when it cannot).
# Bounds are generous (CI machines are slow); bench/faults.sh prints the measured figures.
# The last line is `faults: N passed, M failed`; the exit status is 1 if any check failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${CELLS_BIN:-${CARGO_TARGET_DIR:-target}/debug/cells}"
venv="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}/faults-venv"

missing=()
command -v psql >/dev/null || missing+=(postgresql-client)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[[ -x "$pg_bin/initdb" ]] || missing+=(postgresql)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
if ! { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import boto3, paramiko' 2>/dev/null; }; then
    echo "== creating the Python venv $venv (boto3, paramiko)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check boto3 paramiko
fi
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL

runs=(outage sigterm)
full_dir=$(mktemp -d)
cleanup() {
    umount "$full_dir" 2>/dev/null || true
    rm -rf "$full_dir"
}
trap cleanup EXIT
if mount -t tmpfs -o size=48m tmpfs "$full_dir" 2>/dev/null; then
    runs+=(full)
else
    echo "SKIP full: cannot mount a tmpfs here (not root?); the cargo suite still checks the answers"
fi
CELLS_BIN="$bin" PG_BIN="$pg_bin" FULL_DIR="$full_dir" "$venv/bin/python" "$here/faults/drive.py" "${runs[@]}"
