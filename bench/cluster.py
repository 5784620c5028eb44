"""bench/cluster.sh's measurements, on the cluster of .ci/cluster/drive.py (see there)."""

import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".ci", "cluster"))
import drive  # noqa: E402  (Cluster, status_of)


def wrk(port, path, auth, work):
    # The token goes in a file only we may read, in the run's own folder.
    handle, script = tempfile.mkstemp(suffix=".lua", dir=work)
    with os.fdopen(handle, "w") as f:
        f.write(f'wrk.headers["Authorization"] = "{auth}"\n')
    out = subprocess.run(["wrk", "-t", "2", "-c", "16", "-d", "10s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, int(errors.group(1)) if errors else 0


def main():
    work = tempfile.mkdtemp(prefix="cells-cluster-bench-")
    cluster = drive.Cluster(work)
    try:
        token = cluster.cli("admin", "user", "token", "-u", "admin", "-e", "2h", "-l", "bench", "-q")
        auth = "Basic " + base64.b64encode(f"admin:{token}".encode()).decode()
        status = drive.status_of(cluster.lb_http, "PUT", "/dav/personal-files/4k.bin",
                                 {"Authorization": auth}, os.urandom(4096))[0]
        assert status in (201, 204), status
        print(f"{'what':<34} {'one node':>18} {'three behind HAProxy':>24}")
        for label, path in [("GET 4 KiB file (WebDAV)", "/dav/personal-files/4k.bin"),
                            ("REST GET /a/config/ctl", "/a/config/ctl")]:
            one = wrk(cluster.nodes[0].port, path, auth, work)
            three = wrk(cluster.lb_http, path, auth, work)
            print(f"{label:<34} {one[0]:>10.0f} req/s p99 {one[1]:>6} {three[0]:>12.0f} req/s p99 {three[1]:>6}"
                  f"   (errors {one[2]}/{three[2]})")
        delays = []
        # Each round polls from an address of its own: a revoked token's refusals count as
        # failed logins, and twenty rounds from one address would be throttled.
        for n in range(20):
            source = f"127.0.0.{10 + n}"
            revoked = cluster.cli("admin", "user", "token", "-u", "admin", "-e", "1h", "-l", "r", "-q")
            bearer = {"Authorization": f"Bearer {revoked}"}
            for node in cluster.nodes[1:]:
                status = drive.status_of(node.port, "GET", "/a/config/ctl", bearer, source=source)
                assert status[0] == 200, status
            drive.status_of(cluster.nodes[0].port, "POST", "/a/auth/token/revoke",
                            {**bearer, "Content-Type": "application/json"}, b"{}")
            started = time.monotonic()
            pending = set(cluster.nodes[1:])
            while pending:
                if time.monotonic() - started > 10:
                    raise RuntimeError(f"a revoked token still works after 10 s on {pending}")
                for node in list(pending):
                    if drive.status_of(node.port, "GET", "/a/config/ctl", bearer, source=source)[0] == 401:
                        delays.append(time.monotonic() - started)
                        pending.discard(node)
                time.sleep(0.005)
        print(f"revocation delay across nodes over {len(delays)} refusals: median "
              f"{statistics.median(delays) * 1000:.0f} ms, slowest {max(delays) * 1000:.0f} ms")
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
