#!/usr/bin/env bash
# The cluster of .ci/cluster.sh on Garage (a distributed S3 store in Rust; PEERS.md A12): three
# Garage nodes with replication factor 3, cells node i talking to Garage node i; one Garage
# node killed with SIGKILL in the middle of the copies, and reads and writes through the
# balancer go on (its cells node leaves the pool through /healthz). Runs only when Garage is
# cached (it builds in about 9 minutes on two cores); says so and skips otherwise.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}"
garage="$cache/garage/bin/garage"
if [[ ! -x "$garage" ]]; then
    echo "SKIPPED: Garage is not cached at $garage; build it once per machine with:"
    echo "  cargo install --locked --root $cache/garage garage"
    exit 0
fi
"$garage" --version 2>/dev/null | head -1 || true
GARAGE="$garage" bash "$here/cluster.sh" "$@"
