"""Fault injection against a real `cells` binary (issue 31), on every protocol.

    python drive.py outage   PostgreSQL (our own instance, PG_BIN/PG_PORT) stopped for 15 s under
                             light load on REST, WebDAV, S3 and SFTP: every request that needs it
                             is answered within the bound with 503 / ServiceUnavailable / SFTP
                             "temporarily unavailable"; the first request after the restart works
                             within the recovery bound; an SFTP session survives; no acknowledged
                             write is lost.
    python drive.py sigterm  SIGTERM during slow uploads on every protocol: /healthz turns 503,
                             new connections are refused, uploads that fit the deadline complete,
                             the process exits within --shutdown-timeout, and nothing partial is
                             kept (an upload cut at the deadline leaves no file).
    python drive.py full     A real full disk (a small tmpfs, FULL_DIR): 507 / InsufficientStorage /
                             SFTP "no space left"; a delete works even when another program filled
                             the disk to the last byte, and its space serves the next write.

Each check prints PASS or FAIL; the last line is `faults: N passed, M failed`. Bounds are CI's
generous ones (OUTAGE_BOUND, RECOVERY_BOUND); bench/faults.sh reports the measured figures.
"""

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import boto3
import botocore.config
import paramiko

BIN = os.environ["CELLS_BIN"]
PASSWORD = "faults-" + os.urandom(6).hex()
OUTAGE_BOUND = float(os.environ.get("OUTAGE_BOUND", "8"))
RECOVERY_BOUND = float(os.environ.get("RECOVERY_BOUND", "5"))
GATEWAY_SECRET = "gatewaysecret"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checks import check, figures, free_port, results  # noqa: E402,F401  (objectstore uses them here)


class Server:
    """A `cells start` process on free ports."""

    def __init__(self, data, db_url=None, extra=()):
        self.data = data
        self.db_url = db_url
        self.port = free_port()
        self.sftp_port = free_port()
        os.makedirs(data, exist_ok=True)
        env = dict(os.environ, CELLS_ADMIN_LOGIN="admin", CELLS_ADMIN_PASSWORD=PASSWORD,
                   CELLS_LOG=os.environ.get("CELLS_LOG", "info"),
                   CELLS_S3_GATEWAY_SECRET=GATEWAY_SECRET)
        args = [BIN, "start", "--data", data, "--bind", f"127.0.0.1:{self.port}",
                "--sftp-bind", f"127.0.0.1:{self.sftp_port}", *extra]
        if db_url:
            args += ["--database-url", db_url]
        self.log_path = data.rstrip("/") + ".log"
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.health()[0] == 200:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("cells did not start; see " + self.log_path)
        cli = [BIN, "admin", "user", "token", "-u", "admin", "-e", "2h", "-l", "faults", "-q",
               "--data", data]
        if db_url:
            cli += ["--database-url", db_url]
        self.token = subprocess.check_output(cli, env=env).decode().strip()

    def health(self):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            body = response.read()
            return response.status, json.loads(body or b"{}")
        except (OSError, ValueError):
            return 0, {}

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()

    # --- clients ------------------------------------------------------------------------------

    def auth(self):
        import base64
        return "Basic " + base64.b64encode(f"admin:{self.token}".encode()).decode()

    def http(self, method, path, body=b"", headers=None, timeout=30):
        """One request on a fresh connection: (status, body, seconds); status 0 on a network error."""
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            all_headers = {"Authorization": self.auth(), **(headers or {})}
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            data = response.read()
            connection.close()
            return response.status, data, time.monotonic() - started
        except OSError as error:
            return 0, str(error).encode(), time.monotonic() - started

    def s3(self):
        return boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
            aws_access_key_id=self.token, aws_secret_access_key=GATEWAY_SECRET,
            config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                          connect_timeout=5, read_timeout=30,
                                          s3={"addressing_style": "path"}))

    def sftp(self):
        transport = paramiko.Transport(("127.0.0.1", self.sftp_port))
        transport.banner_timeout = 30
        transport.connect(username="admin", password=self.token)
        return transport, paramiko.SFTPClient.from_transport(transport)


def s3_call(client, operation, **kwargs):
    """(status, code, seconds) of one S3 call."""
    started = time.monotonic()
    try:
        getattr(client, operation)(**kwargs)
        return 200, "", time.monotonic() - started
    except client.exceptions.ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status, error.response.get("Error", {}).get("Code", ""), time.monotonic() - started
    except Exception as error:  # connection errors
        return 0, type(error).__name__, time.monotonic() - started


# --- outage -------------------------------------------------------------------------------------

def pg(*args):
    """Run a PostgreSQL server program as the postgres user (initdb refuses root)."""
    program = os.path.join(os.environ["PG_BIN"], args[0])
    command = [program, *args[1:]]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=True, capture_output=True)


def outage():
    work = tempfile.mkdtemp(prefix="cells-outage-")
    os.chmod(work, 0o777)
    pgdata = os.path.join(work, "pg")
    port = int(os.environ.get("PG_PORT", free_port()))
    pg("initdb", "-D", pgdata, "-A", "trust", "-U", "postgres")
    start_pg = lambda: pg("pg_ctl", "-D", pgdata, "-w", "-l", os.path.join(work, "pg.log"), "-o",
                          f"-p {port} -k {pgdata} -c listen_addresses=127.0.0.1", "start")
    start_pg()
    subprocess.run(["psql", f"postgres://postgres@127.0.0.1:{port}/postgres", "-qc",
                    "CREATE DATABASE cells"], check=True)
    server = Server(os.path.join(work, "data"), f"postgres://postgres@127.0.0.1:{port}/cells",
                    ["--dependency-timeout", "5s"])
    try:
        run_outage(server, pgdata, start_pg)
    finally:
        server.stop()
        subprocess.run([os.path.join(os.environ["PG_BIN"], "pg_ctl"), "-D", pgdata, "-m",
                        "immediate", "stop"] if os.geteuid() != 0 else
                       ["runuser", "-u", "postgres", "--", os.path.join(os.environ["PG_BIN"], "pg_ctl"),
                        "-D", pgdata, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def run_outage(server, pgdata, start_pg):
    events = []  # (protocol, started, seconds, ok, status, detail, written)
    lock = threading.Lock()
    stop = threading.Event()

    def record(protocol, started, seconds, ok, status, written=None):
        with lock:
            events.append((protocol, started, seconds, ok, status, written))

    def rest_and_dav(protocol):
        n = 0
        while not stop.is_set():
            n += 1
            name = f"{protocol}-{n}.txt"
            body = f"{protocol} {n} {os.urandom(8).hex()}".encode()
            path = (f"/a/content/personal-files/{name}" if protocol == "rest"
                    else f"/dav/personal-files/{name}")
            started = time.monotonic()
            status, _, seconds = server.http("PUT", path, body, timeout=30)
            record(protocol, started, seconds, 200 <= status < 300, status, (name, body))
            started = time.monotonic()
            status, _, seconds = server.http("GET", "/a/content/personal-files/" + name, timeout=30)
            record(protocol + "-get", started, seconds, status == 200, status)
            time.sleep(0.2)

    def s3_load():
        client = server.s3()
        n = 0
        while not stop.is_set():
            n += 1
            name = f"s3-{n}.txt"
            body = f"s3 {n} {os.urandom(8).hex()}".encode()
            started = time.monotonic()
            status, code, seconds = s3_call(client, "put_object", Bucket="io",
                                            Key="personal-files/" + name, Body=body)
            record("s3", started, seconds, status == 200, f"{status} {code}", (name, body))
            time.sleep(0.2)

    sftp_session = {}

    def sftp_load():
        transport, sftp = server.sftp()
        sftp_session["transport"] = transport
        n = 0
        while not stop.is_set():
            n += 1
            name = f"sftp-{n}.txt"
            body = f"sftp {n} {os.urandom(8).hex()}".encode()
            started = time.monotonic()
            try:
                with sftp.open("/personal-files/" + name, "wb") as f:
                    f.write(body)
                record("sftp", started, time.monotonic() - started, True, "ok", (name, body))
            except IOError as error:
                record("sftp", started, time.monotonic() - started, False, str(error))
            except Exception as error:  # the session itself failed
                record("sftp", started, time.monotonic() - started, False, "session: " + repr(error))
                return
            time.sleep(0.2)

    threads = [threading.Thread(target=rest_and_dav, args=(p,)) for p in ("rest", "dav")]
    threads += [threading.Thread(target=s3_load), threading.Thread(target=sftp_load)]
    for t in threads:
        t.start()
    time.sleep(5)
    pg("pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop")
    stopped_at = time.monotonic()
    # New SSH logins while it is down: refused without claiming password logins are off.
    time.sleep(3)
    try:
        server.sftp()
        login = "accepted"
    except paramiko.BadAuthenticationType as error:
        login = f"bad authentication type {error.allowed_types}"
    except paramiko.AuthenticationException:
        login = "refused"
    except Exception as error:
        login = repr(error)
    health_down = server.health()[0]
    time.sleep(max(0.0, 15 - (time.monotonic() - stopped_at)))
    start_pg()
    up_at = time.monotonic()
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(60)

    during = [e for e in events if e[1] >= stopped_at + 2 and e[1] + e[2] <= up_at]
    slowest = max((e[2] for e in events if stopped_at <= e[1] <= up_at), default=0)
    figures["outage_slowest_answer_s"] = round(slowest, 2)
    check("outage: requests were made while the database was down", len(during) > 10, f"{len(during)}")
    wrong = [e for e in during if e[3] or not (
        str(e[4]).startswith("503") or e[4] == 503 or "temporarily unavailable" in str(e[4]))]
    check("outage: every request answered 503 / ServiceUnavailable / SFTP 'temporarily unavailable'",
          not wrong, str(wrong[:3]))
    check(f"outage: no answer took longer than {OUTAGE_BOUND} s", slowest <= OUTAGE_BOUND,
          f"slowest {slowest:.2f} s")
    check("outage: /healthz said 503", health_down == 503, str(health_down))
    check("outage: a new SSH password login is refused, not 'publickey only'", login == "refused", login)
    after = sorted((e for e in events if e[1] >= up_at and e[3]), key=lambda e: e[1])
    recovery = {}
    for protocol in ("rest", "dav", "s3", "sftp"):
        first = next((e for e in after if e[0] == protocol), None)
        recovery[protocol] = round(first[1] + first[2] - up_at, 2) if first else None
    figures["recovery_s"] = recovery
    check(f"outage: every protocol works within {RECOVERY_BOUND} s of the restart",
          all(v is not None and v <= RECOVERY_BOUND for v in recovery.values()), str(recovery))
    check("outage: the SFTP session opened before the outage is still open",
          sftp_session.get("transport") is not None and sftp_session["transport"].is_active()
          and not any(str(e[4]).startswith("session:") for e in events))
    acknowledged = [e[5] for e in events if e[3] and e[5] is not None]
    lost = []
    for name, body in acknowledged:
        status, data, _ = server.http("GET", "/a/content/personal-files/" + name)
        if status != 200 or data != body:
            lost.append(name)
    check("outage: every acknowledged write reads back", not lost,
          f"{len(acknowledged)} acknowledged, lost {lost[:5]}")
    figures["outage_acknowledged_writes"] = len(acknowledged)


# --- sigterm ------------------------------------------------------------------------------------

def slow_put(server, method, path, total, seconds, headers=None, outcome=None, key=None):
    """Send `total` bytes over `seconds` with Content-Length; record the status in outcome[key]."""
    started = time.monotonic()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        connection.putrequest(method, path)
        all_headers = {"Content-Length": str(total), **(headers or {})}
        for name, value in all_headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        chunk = 64 * 1024
        sent = 0
        while sent < total:
            n = min(chunk, total - sent)
            connection.send(b"s" * n)
            sent += n
            target = started + seconds * sent / total
            time.sleep(max(0.0, target - time.monotonic()))
        status = connection.getresponse().status
    except OSError as error:
        status = "cut: " + type(error).__name__
    outcome[key] = (status, time.monotonic() - started)


def slow_sftp(server, path, total, seconds, outcome, key):
    started = time.monotonic()
    try:
        transport, sftp = server.sftp()
        with sftp.open(path, "wb") as f:
            sent = 0
            while sent < total:
                n = min(64 * 1024, total - sent)
                f.write(b"s" * n)
                sent += n
                time.sleep(max(0.0, started + seconds * sent / total - time.monotonic()))
        outcome[key] = ("ok", time.monotonic() - started)
        transport.close()
    except Exception as error:
        outcome[key] = ("cut: " + repr(error)[:80], time.monotonic() - started)


def sigterm():
    for label, upload_seconds, deadline in (("fits", 6, 15), ("cut", 30, 8)):
        work = tempfile.mkdtemp(prefix="cells-sigterm-")
        server = Server(os.path.join(work, "data"), extra=["--shutdown-timeout", f"{deadline}s"])
        try:
            run_sigterm(server, label, upload_seconds, deadline)
        finally:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)


def run_sigterm(server, label, upload_seconds, deadline):
    total = 4 * 1024 * 1024
    outcome = {}
    presigned = server.s3().generate_presigned_url(
        "put_object", Params={"Bucket": "io", "Key": f"personal-files/s3-{label}.bin"}, ExpiresIn=600)
    parsed = urllib.parse.urlsplit(presigned)
    uploads = [
        threading.Thread(target=slow_put, args=(server, "PUT", f"/a/content/personal-files/rest-{label}.bin",
                                                total, upload_seconds, {"Authorization": server.auth()},
                                                outcome, "rest")),
        threading.Thread(target=slow_put, args=(server, "PUT", f"/dav/personal-files/dav-{label}.bin",
                                                total, upload_seconds, {"Authorization": server.auth()},
                                                outcome, "dav")),
        threading.Thread(target=slow_put, args=(server, "PUT", parsed.path + "?" + parsed.query, total,
                                                upload_seconds, {}, outcome, "s3")),
        threading.Thread(target=slow_sftp, args=(server, f"/personal-files/sftp-{label}.bin", total,
                                                 upload_seconds, outcome, "sftp")),
    ]
    for t in uploads:
        t.start()
    time.sleep(2)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    health = server.health()[0]
    try:
        with socket.create_connection(("127.0.0.1", server.sftp_port), timeout=2) as s:
            s.settimeout(2)
            refused_sftp = s.recv(64) == b""
    except OSError:
        refused_sftp = True
    try:
        server.process.wait(deadline + 10)
    except subprocess.TimeoutExpired:
        pass
    exited = server.process.poll() is not None
    took = time.monotonic() - signalled
    for t in uploads:
        t.join(60)
    figures[f"sigterm_{label}_exit_s"] = round(took, 2)
    check(f"sigterm ({label}): /healthz is 503 (or closed) while draining", health in (503, 0), str(health))
    check(f"sigterm ({label}): the SFTP port takes no new connection", refused_sftp)
    check(f"sigterm ({label}): exited within --shutdown-timeout {deadline}s (+2 s)",
          exited and took <= deadline + 2, f"{took:.1f} s, code {server.process.returncode}")
    # Restart on the same data and look at what was kept.
    restarted = Server(server.data)
    try:
        for protocol in ("rest", "dav", "s3", "sftp"):
            status, data, _ = restarted.http("GET", f"/a/content/personal-files/{protocol}-{label}.bin")
            result = outcome.get(protocol, ("none", 0))[0]
            acknowledged = result in (200, 201, 204, "ok")
            if label == "fits":
                check(f"sigterm (fits): the {protocol} upload finished and is whole",
                      acknowledged and status == 200 and len(data) == total, f"{result}, {status}, {len(data)}")
            else:
                whole = status == 200 and len(data) == total
                check(f"sigterm (cut): the {protocol} upload cut at the deadline left nothing partial",
                      (status == 404 and not acknowledged) or whole, f"{result}, {status}, {len(data)}")
    finally:
        restarted.stop()


# --- full disk ----------------------------------------------------------------------------------

def full():
    root = os.environ["FULL_DIR"]
    server = Server(os.path.join(root, "data"), extra=[])
    try:
        run_full(server, root)
    finally:
        server.stop()


def run_full(server, root):
    chunk = os.urandom(1024 * 1024)
    stored = []
    status = 201
    n = 0
    while status in (200, 201) and n < 1000:
        n += 1
        status, body, _ = server.http("PUT", f"/a/content/personal-files/f{n}.bin", chunk * 2)
        if status in (200, 201):
            stored.append(f"f{n}.bin")
    check("full: uploads stop with 507", status == 507, f"{status} after {len(stored)} files: {body[:120]!r}")
    check("full: the REST answer says the disk is full", b"disk is full" in body, body[:120].decode(errors="replace"))
    status, body, _ = server.http("PUT", "/dav/personal-files/dav.bin", chunk * 2)
    check("full: WebDAV PUT gets 507", status == 507, str(status))
    status, code, _ = s3_call(server.s3(), "put_object", Bucket="io", Key="personal-files/s3.bin", Body=chunk * 2)
    check("full: S3 PutObject gets 507 InsufficientStorage", status == 507 and code == "InsufficientStorage",
          f"{status} {code}")
    transport, sftp = server.sftp()
    try:
        with sftp.open("/personal-files/sftp.bin", "wb") as f:
            f.write(chunk * 2)
        sftp_answer = "written"
    except IOError as error:
        sftp_answer = str(error)
    check("full: SFTP gets 'no space left'", "no space left" in sftp_answer, sftp_answer)
    health = server.health()
    check("full: /healthz stays 200 with LowSpace", health[0] == 200 and health[1].get("LowSpace") is True,
          str(health))
    # Another program takes the last byte.
    filler = os.path.join(root, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    status, body, _ = server.http("POST", "/a/tree/delete",
                                  json.dumps({"Nodes": [{"Path": f"personal-files/{stored[0]}"}]}).encode())
    check("full: a delete works on a disk full to the last byte", status == 200, f"{status} {body[:120]!r}")
    os.remove(filler)
    deleted_at = time.monotonic()
    status, body, _ = server.http("POST", "/a/tree/delete",
                                  json.dumps({"Nodes": [{"Path": f"personal-files/{stored[1]}"}]}).encode())
    check("full: another delete works", status == 200, str(status))
    status, _, _ = server.http("PUT", "/a/content/personal-files/after.bin", chunk)
    check("full: the freed space takes the next write within a second",
          status == 201 and time.monotonic() - deleted_at < 1, str(status))
    transport.close()


def main():
    which = sys.argv[1:] or ["outage", "sigterm", "full"]
    for name in which:
        print(f"== {name}", flush=True)
        try:
            {"outage": outage, "sigterm": sigterm, "full": full}[name]()
        except Exception as error:  # a broken run is a failed check, with the reason
            check(f"{name}: the run completed", False, repr(error))
    print("figures: " + json.dumps(figures), flush=True)
    print(f"faults: {results['passed']} passed, {results['failed']} failed", flush=True)
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
