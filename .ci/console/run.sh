#!/usr/bin/env bash
# End-to-end test of the web console in Debian's headless Chromium (issue 8, acceptance 1).
#
# Starts its own cells server (fresh temporary data dir, free 127.0.0.1 ports), runs e2e.mjs
# against it with playwright-core driving /usr/bin/chromium, stops the server and exits with
# e2e.mjs's status. Screenshots of every page (desktop and phone widths) are kept in
# $CELLS_SCREENSHOTS [default: target/console-e2e in the repository].
#
#   CELLS_BIN   the server binary [default: ${CARGO_TARGET_DIR:-target}/debug/cells]
#
# Installs Debian's chromium (and nodejs, npm) when missing, and playwright-core
# (package.json) when node_modules is missing. Never downloads a browser of its own.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"
if [[ "$bin" != /* ]]; then
    if [[ -x "$PWD/$bin" ]]; then bin="$PWD/$bin"; else bin="$root/$bin"; fi
fi
if [[ ! -x "$bin" ]]; then
    echo "run.sh: no cells binary at $bin (build it, or set CELLS_BIN)" >&2
    exit 2
fi

missing=()
command -v node >/dev/null || missing+=(nodejs npm)
command -v chromium >/dev/null || missing+=(chromium)
command -v curl >/dev/null || missing+=(curl)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cd "$here"
if [[ ! -d node_modules/playwright-core ]]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund
fi

start_cells console
shots="${CELLS_SCREENSHOTS:-$root/target/console-e2e}"
rm -rf "$shots"
status=0
BASE="http://127.0.0.1:$port" ADMIN=admin PASSWORD="$admin_password" SCREENSHOTS="$shots" \
    CHROMIUM="$(command -v chromium)" node e2e.mjs || status=$?
if ((status != 0)); then
    echo "run.sh: last lines of the server log:"
    tail -n 30 "$work/server.log"
fi
exit "$status"
