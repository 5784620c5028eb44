# shellcheck shell=bash disable=SC2034 # work, port and token are for the sourcing script
# Shared by the CI client checks: start a cells server on free ports in a temp dir.
# After `start_cells`: $work (temp dir, removed on exit), $port, $sftp_port, $bin, and $token
# (a personal access token of admin, for 2 hours). The server logs at $cells_log (default warn).

bin="${CELLS_BIN:-${CARGO_TARGET_DIR:-target}/debug/cells}"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_cells() { # LABEL
    work=$(mktemp -d)
    port=$(free_port)
    sftp_port=$(free_port)
    local password
    password="$1-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    export admin_password="$password"
    CELLS_LOG="${cells_log:-warn}" CELLS_ADMIN_LOGIN=admin CELLS_ADMIN_PASSWORD="$password" \
        "$bin" start --data "$work/data" --bind "127.0.0.1:$port" --sftp-bind "127.0.0.1:$sftp_port" \
        >"$work/server.log" 2>&1 &
    server=$!
    trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    token=$("$bin" admin user token -u admin -e 2h -l "$1" -q --data "$work/data")
}

# small_tree DIR: the 1,000 small files every rclone check copies (10 folders of 100).
small_tree() {
    local d f
    for d in $(seq 0 9); do
        mkdir -p "$1/dir$d"
        for f in $(seq 0 99); do printf 'file %s/%s\n' "$d" "$f" >"$1/dir$d/f$f.txt"; done
    done
}
