#!/usr/bin/env bash
# Issue 28: a short attack load on a release build, with the numbers its acceptance names.
#
#   1. 300 concurrent wrong Basic-auth guesses at one user (the right password sent last):
#      how many passwords the server verified (/metrics cells_password_verifications_total);
#      the policy allows 10 (the user's suspension threshold). Target: <= 10, and the right
#      password, sent last, refused.
#   2. 2 SFTP connections x 8 channels x 200 open read handles on a 64 KiB file: growth of the
#      server's resident memory (VmRSS) while they are open. Target: < 64 MiB.
#   3. 200 half-open HTTP connections (a request head that never ends): /healthz p99 latency
#      from another address while they are held (target: < 10 ms), and how many of them the
#      header-read timeout has closed after it passed (target: all 200).
#
# Usage: bench/attack.sh   (after cargo build --release)
# Environment:
#   CELLS_BIN                   binary [target/release/cells, or $CARGO_TARGET_DIR/release/cells]
#   BENCH_HEADER_TIMEOUT        the server's http-header-timeout for the run [5s] (default 30s)
#   BENCH_START_TIMEOUT         seconds to wait for /healthz [60]
# Needs python3 with venv (paramiko is installed into the temp dir from PyPI).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HEADER_TIMEOUT=${BENCH_HEADER_TIMEOUT:-5s}
[[ $HEADER_TIMEOUT =~ ^[0-9]+s$ ]] || die "BENCH_HEADER_TIMEOUT must look like 5s, not '$HEADER_TIMEOUT'"

resolve_cells_bin
setup_workdir
export CELLS_HTTP_HEADER_TIMEOUT=$HEADER_TIMEOUT
start_server

log "installing paramiko into $WORK_DIR/venv"
python3 -m venv "$WORK_DIR/venv" >/dev/null || die "python3 -m venv failed (apt-get install python3-venv)"
"$WORK_DIR/venv/bin/pip" install -q paramiko >/dev/null || die "pip install paramiko failed"
PY=$WORK_DIR/venv/bin/python

cells_cli admin user create -u victim -p 'victim-password-1' >/dev/null
cells_cli admin user create -u sftper -p 'sftper-password-1' >/dev/null
head -c 65536 /dev/urandom >"$WORK_DIR/small.bin"
ccurl -u 'sftper:sftper-password-1' -T "$WORK_DIR/small.bin" "$BASE_URL/a/content/personal-files/small.bin" -o /dev/null \
  || die "could not upload the 64 KiB file"

metric() {
  ccurl "$BASE_URL/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}

echo
echo "== 1. 300 concurrent guesses at one user"
before=$(metric cells_password_verifications_total)
BASE_URL=$BASE_URL "$PY" - <<'PY'
import base64, os, threading, urllib.request, urllib.error, collections
base = os.environ["BASE_URL"]
statuses = [None] * 300
def guess(i):
    password = "victim-password-1" if i == 299 else f"wrong-{i}"
    token = base64.b64encode(f"victim:{password}".encode()).decode()
    request = urllib.request.Request(base + "/a/config/ctl", headers={"Authorization": "Basic " + token})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            statuses[i] = response.status
    except urllib.error.HTTPError as error:
        statuses[i] = error.code
    except Exception as error:
        statuses[i] = type(error).__name__
threads = [threading.Thread(target=guess, args=(i,)) for i in range(300)]
for t in threads: t.start()
for t in threads: t.join()
print("answers:", dict(collections.Counter(statuses)))
print("the right password (sent last):", statuses[299])
PY
after=$(metric cells_password_verifications_total)
verified=$((after - before))
printf 'passwords verified for the burst: %d (allowed: 10) %s\n' "$verified" "$([[ $verified -le 10 ]] && echo met || echo NOT MET)"

echo
echo "== 2. 2 SFTP connections x 8 channels x 200 read handles on a 64 KiB file"
rss_before=$(proc_kib VmRSS)
SFTP_PORT=$SFTP_PORT SERVER_PID=$SERVER_PID "$PY" - <<'PY'
import os, socket, time, paramiko
port = int(os.environ["SFTP_PORT"])
def rss():
    with open(f"/proc/{os.environ['SERVER_PID']}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
transports, handles, refused = [], [], 0
for _ in range(2):
    # From another address than the guesses of part 1, which that address's throttle holds.
    sock = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.3", 0))
    transport = paramiko.Transport(sock)
    transport.connect(username="sftper", password="sftper-password-1")
    transports.append(transport)
    for _ in range(8):
        client = paramiko.SFTPClient.from_transport(transport)
        for _ in range(200):
            try:
                handle = client.open("/personal-files/small.bin", "rb")
                handle.read(1)
                handles.append(handle)
            except IOError:
                refused += 1
time.sleep(1)
print(f"open handles: {len(handles)}, refused: {refused}")
print(f"rss_with_handles_kib {rss()}")
for handle in handles:
    handle.close()
for transport in transports:
    transport.close()
PY
rss_after=$(proc_kib VmHWM)
grown=$(( (rss_after - rss_before) / 1024 ))
printf 'resident memory before: %s MiB; peak during: %s MiB; growth: %d MiB (target < 64) %s\n' \
  "$(kib_to_mib "$rss_before")" "$(kib_to_mib "$rss_after")" "$grown" "$([[ $grown -lt 64 ]] && echo met || echo NOT MET)"

echo
echo "== 3. 200 half-open HTTP connections; /healthz from another address"
PORT=${BASE_URL##*:} HEADER_TIMEOUT=${HEADER_TIMEOUT%s} "$PY" - <<'PY'
import os, socket, time, http.client
port, timeout = int(os.environ["PORT"]), int(os.environ["HEADER_TIMEOUT"])
held = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    held.append(s)
latencies = []
started = time.monotonic()
while time.monotonic() - started < min(timeout - 1, 4):
    connection = http.client.HTTPConnection("127.0.0.1", port, source_address=("127.0.0.2", 0), timeout=5)
    t = time.perf_counter()
    connection.request("GET", "/healthz")
    connection.getresponse().read()
    latencies.append((time.perf_counter() - t) * 1000)
    connection.close()
latencies.sort()
p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
print(f"/healthz while 200 heads are held: {len(latencies)} requests, p99 {p99:.2f} ms (target < 10) {'met' if p99 < 10 else 'NOT MET'}")
time.sleep(max(0, timeout + 2 - (time.monotonic() - started)))
closed = 0
for s in held:
    s.settimeout(2)
    try:
        # End of stream, or the server's last answer (a 408) before it closes.
        s.recv(1024)
        closed += 1
    except (ConnectionResetError, BrokenPipeError):
        closed += 1
    except socket.timeout:
        pass
print(f"closed by the {timeout} s header timeout: {closed} of 200 {'met' if closed == 200 else 'NOT MET'}")
PY
