#!/usr/bin/env bash
# Relying-party conformance of cells' OpenID provider with openid-client v6 (panva's certified RP).
#
# Starts its own cells server (fresh temporary data dir, free 127.0.0.1 port, two OAuth clients in
# pydio.json), runs rp.mjs against it, stops the server and exits with rp.mjs's status.
#
#   CELLS_BIN   the server binary [default: ${CARGO_TARGET_DIR:-target}/debug/cells, relative to the
#               repository root unless it exists relative to the current directory]
#
# Needs node and npm: installs Debian's `nodejs npm` when node is missing, and openid-client
# (package.json) when node_modules is missing. Builds nothing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

bin="${CELLS_BIN:-${CARGO_TARGET_DIR:-target}/debug/cells}"
if [[ "$bin" != /* ]]; then
    if [[ -x "$PWD/$bin" ]]; then bin="$PWD/$bin"; else bin="$root/$bin"; fi
fi
if [[ ! -x "$bin" ]]; then
    echo "run.sh: no cells binary at $bin (build it, or set CELLS_BIN)" >&2
    exit 2
fi

if ! command -v node >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if ! command -v npm >/dev/null; then
    echo "run.sh: node is installed but npm is not" >&2
    exit 2
fi
cd "$here"
if [[ ! -d node_modules ]]; then
    npm install --no-audit --no-fund
fi

free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
port="$(free_port)"
sftp_port="$(free_port)"
while [[ "$sftp_port" == "$port" ]]; do sftp_port="$(free_port)"; done
base="http://127.0.0.1:$port"

work="$(mktemp -d "${TMPDIR:-/tmp}/cells-rp.XXXXXX")"
data="$work/data"
log="$work/server.log"
mkdir -m 700 "$data"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

password="rp-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"

cat >"$data/pydio.json" <<EOF
{
  "services": {
    "pydio.web.oauth": {
      "staticClients": [
        {
          "client_id": "rp-app",
          "client_name": "openid-client conformance app",
          "client_secret": "rp-app-secret-value",
          "grant_types": ["authorization_code", "refresh_token"],
          "response_types": ["code"],
          "redirect_uris": ["$base/rp/callback"],
          "post_logout_redirect_uris": ["$base/rp/logged-out"],
          "scope": "openid email profile offline",
          "token_endpoint_auth_method": "client_secret_basic",
          "skip_consent": true
        },
        {
          "client_id": "rp-device",
          "client_name": "openid-client conformance device",
          "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
          "scope": "openid profile offline",
          "token_endpoint_auth_method": "none"
        }
      ]
    }
  }
}
EOF

echo "run.sh: starting $bin on $base (data $data)"
CELLS_ADMIN_LOGIN=admin CELLS_ADMIN_PASSWORD="$password" \
    "$bin" start --data "$data" --bind "127.0.0.1:$port" --sftp-bind "127.0.0.1:$sftp_port" \
    >"$log" 2>&1 </dev/null &
server_pid=$!

ready=""
for _ in $(seq 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    if node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) }).then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' \
        "$base/healthz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
if [[ -z "$ready" ]]; then
    echo "run.sh: the server did not answer 200 on $base/healthz; its log:" >&2
    tail -n 50 "$log" >&2
    exit 1
fi

status=0
ISSUER="$base/oidc" ADMIN=admin PASSWORD="$password" node rp.mjs || status=$?

if ((status != 0)); then
    echo "run.sh: last lines of the server log:"
    tail -n 30 "$log"
fi
exit "$status"
