"""The object store under faults (issue 32), against a real `cells` binary and its own
`rclone serve s3` (RCLONE, checks SigV4), on every protocol. File bodies are 200 KiB, more than
the 64 KiB kept in a database row, so every write and read goes to the store.

    python drive.py outage   The object store stopped (killed) for 20 s under light load on REST,
                             WebDAV, S3 and SFTP: every request that needs it is answered within
                             the bound with 503 / ServiceUnavailable / SFTP "temporarily
                             unavailable", /healthz says 503 "object store unavailable", the
                             store restarted on the same port is used again within the recovery
                             bound without restarting cells, and no acknowledged write is lost.
    python drive.py crash    kill -9 of cells during uploads on every protocol (REST, WebDAV,
                             S3 single PUT, S3 multipart completion, SFTP; 12 MiB, so the store's
                             own multipart upload is in flight) after acknowledged small and
                             large uploads: after the restart every acknowledged file reads back
                             whole, nothing partial is visible, and the start-up sweep has left
                             in the store only the objects rows name (no orphan, no unfinished
                             multipart upload).

Each check prints PASS or FAIL; the last line is `objectstore: N passed, M failed`.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "faults"))
import drive as faults  # noqa: E402  (Server, checks, clients)

import http.client as http_client  # noqa: E402

import boto3  # noqa: E402
import botocore.config  # noqa: E402
import paramiko  # noqa: E402

RCLONE = os.environ["RCLONE"]
OUTAGE_BOUND = float(os.environ.get("OUTAGE_BOUND", "8"))
RECOVERY_BOUND = float(os.environ.get("RECOVERY_BOUND", "5"))
KEY, SECRET = "objectstore-ci", "objectstore-ci-secret"
BODY = 200 * 1024
check = faults.check


class Store:
    """An `rclone serve s3` on a port and a folder of its own, stoppable and restartable."""

    def __init__(self, root):
        self.root = root
        self.port = faults.free_port()
        os.makedirs(os.path.join(root, "cells"), exist_ok=True)
        self.process = None
        self.start()

    def start(self):
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.log = open(self.root.rstrip("/") + ".log", "a")
        self.process = subprocess.Popen(
            [RCLONE, "serve", "s3", "--auth-key", f"{KEY},{SECRET}", "--addr", f"127.0.0.1:{self.port}",
             self.root], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                import socket
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("rclone serve s3 did not start")

    def kill(self):
        self.process.kill()
        self.process.wait()
        self.log.close()

    def client(self):
        return boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
            aws_access_key_id=KEY, aws_secret_access_key=SECRET,
            config=botocore.config.Config(s3={"addressing_style": "path"}))

    def use(self, prefix):
        """Point the cells processes this driver starts at this store."""
        os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{self.port}", AWS_ACCESS_KEY_ID=KEY,
                          AWS_SECRET_ACCESS_KEY=SECRET, CELLS_BLOB_STORE=f"s3://cells/{prefix}")

    def keys(self, prefix):
        client = self.client()
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="cells", Prefix=prefix + "/"):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys


def sftp_put(sftp, path, content):
    """Write a file and CLOSE it, raising IOError when CLOSE fails: paramiko's own close()
    ignores a failed CLOSE, and CLOSE is where an upload is committed."""
    f = sftp.open(path, "wb")
    f.write(content)
    f._closed = True
    sftp._request(paramiko.sftp.CMD_CLOSE, f.handle)


def http(server, method, path, body=b"", headers=None, timeout=30):
    """`Server.http`, with a download cut mid-body (the store failed after the headers, which
    then cannot say so) as status 0."""
    try:
        return server.http(method, path, body, headers, timeout)
    except http_client.HTTPException as error:
        return 0, repr(error).encode(), 0.0


def body_of(name, size=BODY):
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


# --- outage -------------------------------------------------------------------------------------

def outage():
    work = tempfile.mkdtemp(prefix="cells-objectstore-outage-")
    store = Store(os.path.join(work, "s3"))
    store.use("outage")
    server = faults.Server(os.path.join(work, "data"), extra=["--dependency-timeout", "5s"])
    try:
        run_outage(server, store)
    finally:
        server.stop()
        store.kill()
        shutil.rmtree(work, ignore_errors=True)


def run_outage(server, store):
    events = []  # (protocol, started, seconds, ok, status, written)
    lock = threading.Lock()
    stop = threading.Event()

    def record(protocol, started, seconds, ok, status, written=None):
        with lock:
            events.append((protocol, started, seconds, ok, status, written))

    # A file written before, read during the outage.
    status, _, _ = server.http("PUT", "/a/content/personal-files/before.bin", body_of("before"))
    check("outage: a file is written before the outage", status == 201, str(status))

    def rest_and_dav(protocol):
        n = 0
        while not stop.is_set():
            n += 1
            name = f"{protocol}-{n}.bin"
            path = (f"/a/content/personal-files/{name}" if protocol == "rest" else f"/dav/personal-files/{name}")
            started = time.monotonic()
            status, _, seconds = http(server, "PUT", path, body_of(name), timeout=30)
            record(protocol, started, seconds, 200 <= status < 300, status, name)
            started = time.monotonic()
            status, data, seconds = http(server, "GET", "/a/content/personal-files/before.bin", timeout=30)
            record(protocol + "-get", started, seconds, status == 200 and data == body_of("before"), status)
            time.sleep(0.2)

    def s3_load():
        client = server.s3()
        n = 0
        while not stop.is_set():
            n += 1
            name = f"s3-{n}.bin"
            started = time.monotonic()
            status, code, seconds = faults.s3_call(client, "put_object", Bucket="io",
                                                   Key="personal-files/" + name, Body=body_of(name))
            record("s3", started, seconds, status == 200, f"{status} {code}", name)
            time.sleep(0.2)

    sftp_session = {}

    def sftp_load():
        transport, sftp = server.sftp()
        sftp_session["transport"] = transport
        n = 0
        while not stop.is_set():
            n += 1
            name = f"sftp-{n}.bin"
            started = time.monotonic()
            try:
                sftp_put(sftp, "/personal-files/" + name, body_of(name))
                record("sftp", started, time.monotonic() - started, True, "ok", name)
            except IOError as error:
                record("sftp", started, time.monotonic() - started, False, str(error))
            except Exception as error:
                record("sftp", started, time.monotonic() - started, False, "session: " + repr(error))
                return
            time.sleep(0.2)

    threads = [threading.Thread(target=rest_and_dav, args=(p,)) for p in ("rest", "dav")]
    threads += [threading.Thread(target=s3_load), threading.Thread(target=sftp_load)]
    for t in threads:
        t.start()
    time.sleep(5)
    store.kill()
    stopped_at = time.monotonic()
    time.sleep(3)
    health = server.health()
    time.sleep(max(0.0, 20 - (time.monotonic() - stopped_at)))
    store.start()
    up_at = time.monotonic()
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(60)

    during = [e for e in events if e[1] >= stopped_at + 2 and e[1] + e[2] <= up_at]
    slowest = max((e[2] for e in events if stopped_at <= e[1] <= up_at), default=0)
    faults.figures["store_outage_slowest_answer_s"] = round(slowest, 2)
    check("outage: requests were made while the store was down", len(during) > 10, f"{len(during)}")
    wrong = [e for e in during if e[3] or not (
        str(e[4]).startswith("503") or e[4] == 503 or "temporarily unavailable" in str(e[4]))]
    check("outage: every request answered 503 / ServiceUnavailable / SFTP 'temporarily unavailable'",
          not wrong, str(wrong[:3]))
    check(f"outage: no answer took longer than {OUTAGE_BOUND} s", slowest <= OUTAGE_BOUND,
          f"slowest {slowest:.2f} s")
    check("outage: /healthz said 503 naming the object store",
          health[0] == 503 and "object store" in str(health[1].get("Status")), str(health))
    after = sorted((e for e in events if e[1] >= up_at and e[3]), key=lambda e: e[1])
    recovery = {}
    for protocol in ("rest", "dav", "s3", "sftp", "rest-get"):
        first = next((e for e in after if e[0] == protocol), None)
        recovery[protocol] = round(first[1] + first[2] - up_at, 2) if first else None
    faults.figures["store_recovery_s"] = recovery
    check(f"outage: every protocol works within {RECOVERY_BOUND} s of the store's restart",
          all(v is not None and v <= RECOVERY_BOUND for v in recovery.values()), str(recovery))
    check("outage: /healthz is 200 again", server.health()[0] == 200)
    check("outage: the SFTP session opened before the outage is still open",
          sftp_session.get("transport") is not None and sftp_session["transport"].is_active())
    acknowledged = [e[5] for e in events if e[3] and e[5] is not None]
    lost = []
    for name in acknowledged:
        status, data, _ = server.http("GET", "/a/content/personal-files/" + name)
        if status != 200 or data != body_of(name):
            lost.append(name)
    check("outage: every acknowledged write reads back whole", not lost,
          f"{len(acknowledged)} acknowledged, lost {lost[:5]}")
    faults.figures["store_outage_acknowledged_writes"] = len(acknowledged)


# --- crash --------------------------------------------------------------------------------------

LARGE = 12 * 1024 * 1024


def crash():
    work = tempfile.mkdtemp(prefix="cells-objectstore-crash-")
    store = Store(os.path.join(work, "s3"))
    store.use("crash")
    data = os.path.join(work, "data")
    server = faults.Server(data)
    try:
        run_crash(server, store, data)
    finally:
        server.stop()
        store.kill()
        shutil.rmtree(work, ignore_errors=True)


def run_crash(server, store, data):
    acknowledged = {}
    for size, label in ((BODY, "small"), (LARGE, "large")):
        for protocol in ("rest", "dav", "s3", "sftp"):
            name = f"done-{protocol}-{label}.bin"
            content = body_of(name, size)
            if protocol in ("rest", "dav"):
                path = (f"/a/content/personal-files/{name}" if protocol == "rest" else f"/dav/personal-files/{name}")
                ok = server.http("PUT", path, content, timeout=120)[0] in (200, 201, 204)
            elif protocol == "s3":
                ok = faults.s3_call(server.s3(), "put_object", Bucket="io", Key="personal-files/" + name,
                                    Body=content)[0] == 200
            else:
                transport, sftp = server.sftp()
                try:
                    sftp_put(sftp, "/personal-files/" + name, content)
                    ok = True
                except IOError:
                    ok = False
                transport.close()
            check(f"crash: {protocol} {label} upload acknowledged before the crash", ok)
            acknowledged[name] = content
    # An S3 multipart upload through the gateway, completed before the crash.
    s3 = server.s3()
    parts = [body_of(f"part-{n}", 5 * 1024 * 1024) for n in range(2)] + [b"tail"]
    upload = s3.create_multipart_upload(Bucket="io", Key="personal-files/done-multipart.bin")
    etags = [s3.upload_part(Bucket="io", Key="personal-files/done-multipart.bin", PartNumber=n + 1,
                            UploadId=upload["UploadId"], Body=part)["ETag"] for n, part in enumerate(parts)]
    s3.complete_multipart_upload(
        Bucket="io", Key="personal-files/done-multipart.bin", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": tag} for n, tag in enumerate(etags)]})
    acknowledged["done-multipart.bin"] = b"".join(parts)

    # Uploads in flight when the process is killed: slow bodies, each cut half way.
    outcome = {}
    presigned = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "io", "Key": "personal-files/cut-s3.bin"}, ExpiresIn=600)
    parsed = urllib.parse.urlsplit(presigned)
    cut = [
        threading.Thread(target=faults.slow_put, args=(server, "PUT", "/a/content/personal-files/cut-rest.bin",
                                                       LARGE, 8, {"Authorization": server.auth()}, outcome, "rest")),
        threading.Thread(target=faults.slow_put, args=(server, "PUT", "/dav/personal-files/cut-dav.bin",
                                                       LARGE, 8, {"Authorization": server.auth()}, outcome, "dav")),
        threading.Thread(target=faults.slow_put, args=(server, "PUT", parsed.path + "?" + parsed.query, LARGE, 8,
                                                       {}, outcome, "s3")),
        threading.Thread(target=faults.slow_sftp, args=(server, "/personal-files/cut-sftp.bin", LARGE, 8, outcome,
                                                        "sftp")),
    ]
    # A multipart completion racing the kill.
    upload = s3.create_multipart_upload(Bucket="io", Key="personal-files/cut-multipart.bin")
    etags = [s3.upload_part(Bucket="io", Key="personal-files/cut-multipart.bin", PartNumber=n + 1,
                            UploadId=upload["UploadId"], Body=part)["ETag"] for n, part in enumerate(parts)]

    def complete():
        try:
            s3.complete_multipart_upload(
                Bucket="io", Key="personal-files/cut-multipart.bin", UploadId=upload["UploadId"],
                MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": tag} for n, tag in enumerate(etags)]})
            outcome["multipart"] = ("ok", 0)
        except Exception as error:
            outcome["multipart"] = ("cut: " + type(error).__name__, 0)

    for t in cut:
        t.start()
    time.sleep(4)
    completing = threading.Thread(target=complete)
    completing.start()
    time.sleep(0.05)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    for t in cut + [completing]:
        t.join(60)

    restarted = faults.Server(data)
    try:
        for name, content in acknowledged.items():
            status, got, _ = restarted.http("GET", "/a/content/personal-files/" + name, timeout=120)
            check(f"crash: acknowledged {name} reads back whole", status == 200 and got == content,
                  f"{status}, {len(got)} bytes")
        for protocol in ("rest", "dav", "s3", "sftp", "multipart"):
            name = f"cut-{protocol}.bin"
            status, got, _ = restarted.http("GET", "/a/content/personal-files/" + name, timeout=120)
            result = outcome.get(protocol, ("none", 0))[0]
            expected = b"".join(parts) if protocol == "multipart" else b"s" * LARGE
            whole = status == 200 and got == expected
            # SFTP's OPEN makes the name (POSIX): a process killed before CLOSE leaves it empty.
            made = protocol == "sftp" and status == 200 and got == b""
            check(f"crash: the {protocol} upload cut by kill -9 is absent{' (or empty)' if protocol == 'sftp' else ''}"
                  " or whole, never partial", status == 404 or whole or made, f"{result}, {status}, {len(got)} bytes")
        # What the store holds: exactly the blobs rows name (sweep at start-up on SQLite).
        keys = store.keys("crash")
        blob_objects = {k.split("/")[2] for k in keys if k.startswith("crash/blobs/")}
        parts_blobs = {k.split("/")[2] for k in keys if k.startswith("crash/parts/")}
        names = list(acknowledged) + [f"cut-{p}.bin" for p in ("rest", "dav", "s3", "sftp", "multipart")]
        stored = {}
        for n in names:
            status, got, _ = restarted.http("GET", "/a/content/personal-files/" + n, timeout=120)
            if status == 200:
                stored[n] = len(got)
        # A file larger than a row keeps (64 KiB) has one blob. The parts of a multipart upload
        # whose completion was cut stay (the client may complete it again).
        expected = sum(1 for size in stored.values() if size > 64 * 1024)
        expected += 0 if "cut-multipart.bin" in stored else len(parts)
        check("crash: the store holds the objects rows name and nothing else (orphans swept)",
              len(blob_objects) + len(parts_blobs) == expected,
              f"{len(blob_objects)} objects + {len(parts_blobs)} parts blobs, {expected} expected")
        try:
            pending = store.client().list_multipart_uploads(Bucket="cells", Prefix="crash/").get("Uploads", [])
            check("crash: no unfinished multipart upload is left in the store", not pending,
                  f"{len(pending)} left")
        except Exception as error:  # a store without ListMultipartUploads
            print(f"SKIP crash: the store cannot list multipart uploads ({type(error).__name__})")
    finally:
        restarted.stop()


def main():
    which = sys.argv[1:] or ["outage", "crash"]
    for name in which:
        print(f"== {name}", flush=True)
        try:
            {"outage": outage, "crash": crash}[name]()
        except Exception as error:
            check(f"{name}: the run completed", False, repr(error))
    print("figures: " + json.dumps(faults.figures), flush=True)
    print(f"objectstore: {faults.results['passed']} passed, {faults.results['failed']} failed", flush=True)
    sys.exit(1 if faults.results["failed"] else 0)


if __name__ == "__main__":
    main()
