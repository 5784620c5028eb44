#!/usr/bin/env bash
# litmus (the WebDAV compliance suite) against /dav/personal-files/ with a personal access
# token as the password. Every suite must pass 100%.
set -euo pipefail
bin="${CELLS_BIN:-${CARGO_TARGET_DIR:-target}/debug/cells}"
if ! command -v litmus >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq litmus >/dev/null
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sftp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
password="litmus-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CELLS_LOG=warn CELLS_ADMIN_LOGIN=admin CELLS_ADMIN_PASSWORD="$password" \
    "$bin" start --data "$work/data" --bind "127.0.0.1:$port" --sftp-bind "127.0.0.1:$sftp_port" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
token=$("$bin" admin user token -u admin -e 1h -l litmus -q --data "$work/data")
mkdir "$work/litmus"
cd "$work/litmus"
litmus -k "http://127.0.0.1:$port/dav/personal-files/" admin "$token" >"$work/litmus.log" 2>&1 || true
grep -a "summary for" "$work/litmus.log"
passed=$(grep -a -c "summary for .* 100.0%" "$work/litmus.log" || true)
if [[ $passed -ne 5 ]]; then
    grep -a -E "FAIL|WARNING" "$work/litmus.log" | head -40
    echo "litmus: $passed of 5 suites at 100%" >&2
    exit 1
fi
echo "litmus: 5 passed, 0 failed"
