"""A soak of a release build (issue 31): mixed load on REST, WebDAV, S3 and SFTP for
SOAK_SECONDS (default 1800), RSS sampled every 10 s.

    CELLS_BIN=/path/to/release/cells python bench/soak.py

Each of 8 clients loops over its protocol's everyday operations (PUT of a small and a 1 MiB
file, GET, listing, delete) on its own files. Prints errors (any unexpected status), latency
percentiles per protocol, and RSS after warm-up (first 2 minutes), at the end and at its peak.
Needs boto3 and paramiko (bench/soak.sh makes a venv).
"""

import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".ci", "faults"))
import drive  # noqa: E402  (the fault driver's Server and clients)

SECONDS = int(os.environ.get("SOAK_SECONDS", "1800"))
SMALL = b"s" * 4096
LARGE = os.urandom(1 << 20)


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 1)


def main():
    import tempfile
    work = tempfile.mkdtemp(prefix="cells-soak-")
    server = drive.Server(os.path.join(work, "data"))
    stop = threading.Event()
    lock = threading.Lock()
    latencies = {}
    errors = []

    def note(protocol, seconds, ok, what):
        with lock:
            latencies.setdefault(protocol, []).append(seconds)
            if not ok:
                errors.append((protocol, what))

    def http_client(protocol, n):
        prefix = "/a/content/personal-files" if protocol == "rest" else "/dav/personal-files"
        server.http("MKCOL", f"/dav/personal-files/{protocol}{n}/")
        i = 0
        while not stop.is_set():
            i += 1
            body = LARGE if i % 10 == 0 else SMALL
            path = f"{prefix}/{protocol}{n}/f{i % 50}.bin"
            status, _, seconds = server.http("PUT", path, body)
            note(protocol, seconds, status in (200, 201, 204), f"PUT {status}")
            status, data, seconds = server.http("GET", path)
            note(protocol, seconds, status == 200 and data == body, f"GET {status}")
            if protocol == "dav":
                status, _, seconds = server.http("PROPFIND", f"/dav/personal-files/{protocol}{n}/",
                                                 headers={"Depth": "1"})
                note(protocol, seconds, status == 207, f"PROPFIND {status}")
            else:
                listing = json.dumps({"NodePaths": [f"personal-files/{protocol}{n}/*"]}).encode()
                status, _, seconds = server.http("POST", "/a/tree/stats", listing)
                note(protocol, seconds, status == 200, f"stats {status}")

    def s3_client(n):
        client = server.s3()
        i = 0
        while not stop.is_set():
            i += 1
            key = f"personal-files/s3{n}/f{i % 50}.bin"
            body = LARGE if i % 10 == 0 else SMALL
            status, code, seconds = drive.s3_call(client, "put_object", Bucket="io", Key=key, Body=body)
            note("s3", seconds, status == 200, f"put {status} {code}")
            status, code, seconds = drive.s3_call(client, "get_object", Bucket="io", Key=key)
            note("s3", seconds, status == 200, f"get {status} {code}")
            status, code, seconds = drive.s3_call(client, "list_objects_v2", Bucket="io",
                                                  Prefix=f"personal-files/s3{n}/")
            note("s3", seconds, status == 200, f"list {status} {code}")

    def sftp_client(n):
        transport, sftp = server.sftp()
        sftp.mkdir(f"/personal-files/sftp{n}")
        i = 0
        while not stop.is_set():
            i += 1
            path = f"/personal-files/sftp{n}/f{i % 50}.bin"
            body = LARGE if i % 10 == 0 else SMALL
            started = time.monotonic()
            try:
                with sftp.open(path, "wb") as f:
                    f.write(body)
                with sftp.open(path, "rb") as f:
                    ok = f.read() == body
                sftp.listdir(f"/personal-files/sftp{n}")
                note("sftp", time.monotonic() - started, ok, "content differs")
            except Exception as error:
                note("sftp", time.monotonic() - started, False, repr(error))
        transport.close()

    clients = [threading.Thread(target=http_client, args=("rest", n)) for n in range(2)]
    clients += [threading.Thread(target=http_client, args=("dav", n)) for n in range(2)]
    clients += [threading.Thread(target=s3_client, args=(n,)) for n in range(2)]
    clients += [threading.Thread(target=sftp_client, args=(n,)) for n in range(2)]
    for c in clients:
        c.start()
    samples = []
    started = time.monotonic()
    while time.monotonic() - started < SECONDS:
        time.sleep(10)
        with open(f"/proc/{server.process.pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        samples.append((round(time.monotonic() - started), rss // 1024))
        print(f"{samples[-1][0]:>5} s  RSS {samples[-1][1]} MiB  requests {sum(map(len, latencies.values()))}"
              f"  errors {len(errors)}", flush=True)
    stop.set()
    for c in clients:
        c.join(120)
    server.stop()
    warm = [rss for t, rss in samples if t >= 120] or [rss for _, rss in samples]
    report = {
        "seconds": SECONDS,
        "requests": {p: len(v) for p, v in latencies.items()},
        "errors": len(errors),
        "first_errors": errors[:10],
        "latency_ms": {p: {"p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "p99": percentile(v, 0.99),
                           "max": round(max(v) * 1000, 1)} for p, v in latencies.items()},
        "rss_mib": {"after_warmup": warm[0], "end": warm[-1], "peak": max(warm),
                    "mean": round(statistics.mean(warm), 1)},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
