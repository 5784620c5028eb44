#!/usr/bin/env bash
# Issue 31: the fault figures of a release build, measured with the CI fault driver
# (.ci/faults/drive.py) at tight bounds: how long requests take to be answered "unavailable"
# while our own PostgreSQL instance is down, how soon each protocol works again after its
# restart, how long SIGTERM takes to exit; then a soak (bench/soak.py, SOAK_SECONDS, default
# 1800) with RSS every 10 s and latency percentiles.
#   cargo build --release && bench/faults.sh            # outage, sigterm, then the soak
#   SOAK_SECONDS=0 bench/faults.sh                      # without the soak
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CELLS_BIN="${CELLS_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/cells}"
export OUTAGE_BOUND="${OUTAGE_BOUND:-5.5}" RECOVERY_BOUND="${RECOVERY_BOUND:-2}"
export CELLS_LOG="${CELLS_LOG:-warn}"
# The CI script makes the venv and our own PostgreSQL; it skips the tmpfs run without root.
bash "$here/../.ci/faults.sh" || true
if [[ "${SOAK_SECONDS:-1800}" != 0 ]]; then
    venv="${CELLS_CI_CACHE:-/var/tmp/cells-ci-cache}/faults-venv"
    "$venv/bin/python" "$here/soak.py"
fi
