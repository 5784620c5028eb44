"""The README's cluster recipe on loopback (issue 33), run as a user would: a fresh PostgreSQL
database, `rclone serve s3` (RCLONE), three `cells` nodes (CELLS_BIN) with data dirs of their
own, one master key, `--trusted-proxy 127.0.0.1`, and HAProxy (HAPROXY) with deploy/haproxy.cfg
as it is. Through the balancer:

  - litmus 100 % with a personal access token;
  - rclone copies 1,000 small files and a large one up and back over WebDAV and over S3, with
    `rclone check` clean; one node is killed with SIGKILL in the middle of the WebDAV upload
    and the clients finish through the others, nothing acknowledged lost or partial;
  - OpenSSH sftp puts and gets, on every node in turn, with one pinned host key;
  - a browser-style OpenID login (authorization code, PKCE) whose pages are served by
    different nodes (HAProxy's X-Cells-Node header says which);
  - per-address throttling sees the client's own address (127.0.0.2 throttled, 127.0.0.3 not);
  - a PAT revoked through one node is refused by the others (each polled directly) within
    REVOCATION_BOUND seconds (the tight figure is bench/cluster.sh's).

Each check prints PASS or FAIL; then `figures: {...}`; the last line is
`cluster: N passed, M failed`.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checks import check, figures, free_port, results  # noqa: E402

BIN = os.environ["CELLS_BIN"]
RCLONE = os.environ["RCLONE"]
HAPROXY = os.environ.get("HAPROXY", "haproxy")
# With GARAGE (a `garage` binary), the store is a three-node Garage cluster instead, and one of
# its nodes is killed in the middle of the copies instead of a cells node.
GARAGE = os.environ.get("GARAGE")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN_URL = os.environ.get("CELLS_CI_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REVOCATION_BOUND = float(os.environ.get("REVOCATION_BOUND", "1"))
SMALL_FILES = int(os.environ.get("CLUSTER_SMALL_FILES", "1000"))
LARGE_MIB = int(os.environ.get("CLUSTER_LARGE_MIB", "256"))
PASSWORD = "cluster-" + secrets.token_hex(6)
GATEWAY_SECRET = "cluster-gateway-secret"
STORE_KEY, STORE_SECRET = "cluster-ci", "cluster-ci-secret"
CLIENT_ID, CLIENT_SECRET = "cluster-app", "cluster-app-secret-value"



def wait_for_port(port, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def status_of(port, method, path, headers=None, body=b"", source=None, timeout=30):
    """One request on a fresh connection: (status, headers, body); status 0 on a network error."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                                source_address=(source, 0) if source else None)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, dict(response.getheaders()), data
    except OSError as error:
        return 0, {}, str(error).encode()


def basic(login, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()}


class Cluster:
    """PostgreSQL database, object store, three nodes and the balancer, all on loopback."""

    def __init__(self, work):
        self.work = work
        self.database = f"cells_cluster_{os.getpid()}"
        subprocess.run(["psql", ADMIN_URL, "-qc", f"CREATE DATABASE {self.database}"], check=True)
        self.database_url = ADMIN_URL.rsplit("/", 1)[0] + "/" + self.database
        self.store = GarageStore(work) if GARAGE else RcloneStore(work)
        self.lb_http, self.lb_sftp = free_port(), free_port()
        self.env = dict(
            os.environ, CELLS_MASTER_KEY=secrets.token_hex(32), CELLS_ADMIN_LOGIN="admin",
            CELLS_ADMIN_PASSWORD=PASSWORD, CELLS_S3_GATEWAY_SECRET=GATEWAY_SECRET,
            AWS_ENDPOINT_URL=self.store.endpoint(1), AWS_ACCESS_KEY_ID=self.store.key,
            AWS_SECRET_ACCESS_KEY=self.store.secret, AWS_REGION=self.store.region,
            CELLS_LOG=os.environ.get("CELLS_LOG", "info"))
        self.env.pop("AWS_CA_BUNDLE", None)
        self.nodes = [Node(self, n) for n in (1, 2, 3)]
        for node in self.nodes:
            node.start()
        self.haproxy_pid = os.path.join(work, "haproxy.pid")
        lb_env = dict(os.environ, CELLS_LB_HTTP=f"127.0.0.1:{self.lb_http}",
                      CELLS_LB_SFTP=f"127.0.0.1:{self.lb_sftp}")
        for node in self.nodes:
            lb_env[f"CELLS_NODE{node.number}_HTTP"] = f"127.0.0.1:{node.port}"
            lb_env[f"CELLS_NODE{node.number}_SFTP"] = f"127.0.0.1:{node.sftp_port}"
            lb_env[f"CELLS_NODE{node.number}_HTTP_PORT"] = str(node.port)
        subprocess.run([HAPROXY, "-f", os.path.join(ROOT, "deploy", "haproxy.cfg"), "-D",
                        "-p", self.haproxy_pid], env=lb_env, check=True)
        deadline = time.monotonic() + 30
        while status_of(self.lb_http, "GET", "/healthz")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the balancer did not answer /healthz")
            time.sleep(0.2)
        # Every node up in HAProxy's eyes (rise 2, inter 1s).
        time.sleep(3)

    def cli(self, *args, node=None):
        node = node or self.nodes[0]
        return subprocess.check_output(
            [BIN, *args, "--data", node.data, "--database-url", self.database_url,
             "--blob-store", "s3://cluster"], env=self.env).decode().strip()

    def close(self):
        try:
            with open(self.haproxy_pid) as f:
                os.kill(int(f.read().split()[0]), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        for node in self.nodes:
            node.stop()
        self.store.close()
        subprocess.run(["psql", ADMIN_URL, "-qc", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
                       check=False)


class RcloneStore:
    """`rclone serve s3` on a folder: one endpoint for every node."""

    region = "us-east-1"

    def __init__(self, work):
        self.key, self.secret = STORE_KEY, STORE_SECRET
        self.port = free_port()
        os.makedirs(os.path.join(work, "store", "cluster"))
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.log = open(os.path.join(work, "store.log"), "w")
        self.process = subprocess.Popen(
            [RCLONE, "serve", "s3", "--auth-key", f"{STORE_KEY},{STORE_SECRET}",
             "--addr", f"127.0.0.1:{self.port}", os.path.join(work, "store")],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for_port(self.port):
            raise RuntimeError("rclone serve s3 did not start")

    def endpoint(self, _node):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.process.kill()
        self.process.wait()
        self.log.close()


class GarageStore:
    """Three Garage nodes, replication factor 3 (PEERS.md A12), bucket `cluster`; cells node i
    talks to Garage node i."""

    region = "garage"

    def __init__(self, work):
        self.work = work
        secret = secrets.token_hex(32)
        self.ports, self.processes, self.configs = [], [], []
        for i in (1, 2, 3):
            s3, rpc, admin = free_port(), free_port(), free_port()
            os.makedirs(os.path.join(work, f"garage{i}", "meta"))
            os.makedirs(os.path.join(work, f"garage{i}", "data"))
            config = os.path.join(work, f"garage{i}.toml")
            with open(config, "w") as f:
                f.write(f"""metadata_dir = "{work}/garage{i}/meta"
data_dir = "{work}/garage{i}/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:{admin}"
""")
            log = open(os.path.join(work, f"garage{i}.log"), "w")
            self.processes.append(subprocess.Popen([GARAGE, "-c", config, "server"], stdout=log,
                                                   stderr=subprocess.STDOUT))
            self.ports.append(s3)
            self.configs.append(config)
        for port in self.ports:
            if not wait_for_port(port):
                raise RuntimeError("a Garage node did not start")
        ids = [self.garage(i, "node", "id", "-q").strip() for i in (1, 2, 3)]
        for node_id in ids[1:]:
            self.garage(1, "node", "connect", node_id)
        for zone, node_id in enumerate(ids, 1):
            self.garage(1, "layout", "assign", "-z", f"dc{zone}", "-c", "1G", node_id.split("@")[0][:16])
        self.garage(1, "layout", "apply", "--version", "1")
        created = self.garage(1, "key", "create", "cells-key")
        self.key = re.search(r"Key ID:\s*(\S+)", created).group(1)
        self.secret = re.search(r"Secret key:\s*(\S+)", created).group(1)
        self.garage(1, "bucket", "create", "cluster")
        self.garage(1, "bucket", "allow", "--read", "--write", "--owner", "cluster", "--key", "cells-key")

    def garage(self, node, *args):
        return subprocess.check_output([GARAGE, "-c", self.configs[node - 1], *args], text=True)

    def endpoint(self, node):
        return f"http://127.0.0.1:{self.ports[node - 1]}"

    def kill(self, node):
        self.processes[node - 1].send_signal(signal.SIGKILL)
        self.processes[node - 1].wait()

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


class Node:
    """One `cells start`: its own data dir and ports; the cluster's database, store and key."""

    def __init__(self, cluster, number):
        self.cluster = cluster
        self.number = number
        self.data = os.path.join(cluster.work, f"node{number}")
        os.makedirs(self.data)
        self.port, self.sftp_port = free_port(), free_port()
        lb = f"http://127.0.0.1:{cluster.lb_http}"
        # The balancer's URL is the issuer; one OAuth client for a browser-style login.
        with open(os.path.join(self.data, "pydio.json"), "w") as f:
            json.dump({"services": {"pydio.web.oauth": {"staticClients": [{
                "client_id": CLIENT_ID, "client_name": "cluster app", "client_secret": CLIENT_SECRET,
                "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                "redirect_uris": [f"{lb}/app/callback"], "scope": "openid profile",
                "token_endpoint_auth_method": "client_secret_basic", "skip_consent": True}]}}}, f)
        self.process = None

    def start(self):
        self.log = open(self.data + ".log", "a")
        self.process = subprocess.Popen(
            [BIN, "start", "--data", self.data, "--bind", f"127.0.0.1:{self.port}",
             "--sftp-bind", f"127.0.0.1:{self.sftp_port}", "--database-url", self.cluster.database_url,
             "--blob-store", "s3://cluster", "--trusted-proxy", "127.0.0.1/32",
             "--external-url", f"http://127.0.0.1:{self.cluster.lb_http}"],
            env=dict(self.cluster.env, AWS_ENDPOINT_URL=self.cluster.store.endpoint(self.number)),
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while status_of(self.port, "GET", "/healthz")[0] != 200:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"node {self.number} did not start; see {self.data}.log")
            time.sleep(0.1)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.process:
            self.log.close()


def rclone(*args, env=None, timeout=1800):
    return subprocess.run([RCLONE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def rclone_env(cluster, token):
    obscured = subprocess.check_output([RCLONE, "obscure", token]).decode().strip()
    lb = f"http://127.0.0.1:{cluster.lb_http}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(RCLONE_CONFIG="/dev/null",
               RCLONE_CONFIG_LBDAV_TYPE="webdav", RCLONE_CONFIG_LBDAV_URL=f"{lb}/dav/personal-files",
               RCLONE_CONFIG_LBDAV_VENDOR="other", RCLONE_CONFIG_LBDAV_USER="admin",
               RCLONE_CONFIG_LBDAV_PASS=obscured,
               RCLONE_CONFIG_LBS3_TYPE="s3", RCLONE_CONFIG_LBS3_PROVIDER="Other",
               RCLONE_CONFIG_LBS3_ENDPOINT=lb, RCLONE_CONFIG_LBS3_ACCESS_KEY_ID=token,
               RCLONE_CONFIG_LBS3_SECRET_ACCESS_KEY=GATEWAY_SECRET,
               RCLONE_CONFIG_LBS3_FORCE_PATH_STYLE="true", RCLONE_CONFIG_LBS3_REGION="us-east-1")
    return env


def make_tree(root):
    os.makedirs(os.path.join(root, "small"))
    for i in range(SMALL_FILES):
        with open(os.path.join(root, "small", f"f{i:04d}.txt"), "wb") as f:
            f.write(hashlib.sha256(str(i).encode()).hexdigest().encode() * (1 + i % 40))
    with open(os.path.join(root, "large.bin"), "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(LARGE_MIB):
            f.write(block)


def copies(cluster, token, work):
    """rclone up and back over WebDAV (a node killed in the middle: cells node 2, or on Garage,
    Garage node 2, which takes cells node 2 out through its /healthz) and over S3."""
    env = rclone_env(cluster, token)
    source = os.path.join(work, "tree")
    make_tree(source)
    flags = ["--transfers", "8", "--retries", "5", "--low-level-retries", "20", "--stats", "0"]
    # WebDAV up, node 2 killed with SIGKILL 3 s in.
    what = "Garage node" if GARAGE else "node"
    started = time.monotonic()
    upload = subprocess.Popen([RCLONE, "copy", source, "lbdav:cluster-dav", *flags], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    killed_while_running = upload.poll() is None
    if GARAGE:
        cluster.store.kill(2)
    else:
        cluster.nodes[1].kill()
    output = upload.communicate(timeout=1800)[0]
    figures["webdav_upload_s"] = round(time.monotonic() - started, 1)
    check(f"rclone copy over WebDAV through the balancer finishes with a {what} killed in the middle",
          upload.returncode == 0 and killed_while_running,
          f"exit {upload.returncode}, killed while running: {killed_while_running}; {output[-400:]}")
    if GARAGE:
        status, _, body = status_of(cluster.nodes[1].port, "GET", "/healthz")
        check("the cells node whose Garage node died says so on /healthz (the balancer takes it out)",
              status == 503 and b"object store" in body, f"{status} {body[:200]!r}")
    checked = rclone("check", source, "lbdav:cluster-dav", "--download", "--one-way", env=env)
    check("rclone check (download) over WebDAV: every file whole after the kill", checked.returncode == 0,
          checked.stderr[-400:])
    back = os.path.join(work, "back-dav")
    got = rclone("copy", "lbdav:cluster-dav", back, *flags, env=env)
    same = got.returncode == 0 and rclone("check", source, back).returncode == 0
    check("rclone copies the WebDAV tree back, byte for byte", same, got.stderr[-400:])

    # S3 up and back on the two nodes left.
    started = time.monotonic()
    up = rclone("copy", source, "lbs3:io/personal-files/cluster-s3", *flags, env=env)
    figures["s3_upload_s"] = round(time.monotonic() - started, 1)
    check("rclone copy over S3 through the balancer", up.returncode == 0, up.stderr[-400:])
    checked = rclone("check", source, "lbs3:io/personal-files/cluster-s3", env=env)
    check("rclone check over S3 (sizes and MD5 ETags) is clean", checked.returncode == 0, checked.stderr[-400:])
    back = os.path.join(work, "back-s3")
    got = rclone("copy", "lbs3:io/personal-files/cluster-s3", back, *flags, env=env)
    same = got.returncode == 0 and rclone("check", source, back).returncode == 0
    check("rclone copies the S3 tree back, byte for byte", same, got.stderr[-400:])


def litmus(cluster, token, work):
    folder = os.path.join(work, "litmus")
    os.makedirs(folder)
    url = f"http://127.0.0.1:{cluster.lb_http}/dav/personal-files/"
    run = subprocess.run(["litmus", "-k", url, "admin", token], cwd=folder, capture_output=True,
                         text=True, timeout=900)
    summaries = re.findall(r"summary for `(\w+)': of \d+ tests run: \d+ passed, \d+ failed\. ([\d.]+)%",
                           run.stdout)
    full = [name for name, percent in summaries if percent == "100.0"]
    check("litmus through the balancer: every suite 100 %", len(full) == 5 and len(summaries) == 5,
          f"{summaries}")


def sftp(cluster, token, work):
    """OpenSSH sftp through the balancer, six sessions (every node twice), one pinned key."""
    printed = cluster.cli("admin", "sftp", "host-key", node=cluster.nodes[2])
    key_type, key_data = printed.splitlines()[0].split()[:2]
    known = os.path.join(work, "known_hosts")
    with open(known, "w") as f:
        f.write(f"[127.0.0.1]:{cluster.lb_sftp} {key_type} {key_data}\n")
    payload = os.path.join(work, "sftp-payload.bin")
    with open(payload, "wb") as f:
        f.write(os.urandom(3 << 20))
    ok = 0
    for i in range(6):
        back = os.path.join(work, f"sftp-back-{i}.bin")
        batch = f"put {payload} /personal-files/sftp-{i}.bin\nget /personal-files/sftp-{i}.bin {back}\n"
        run = subprocess.run(
            ["sshpass", "-p", token, "sftp", "-P", str(cluster.lb_sftp), "-o", "BatchMode=no",
             "-o", "PubkeyAuthentication=no", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={known}", "-o", "ConnectTimeout=10", "-b", "-", "admin@127.0.0.1"],
            input=batch, capture_output=True, text=True, timeout=120)
        if run.returncode == 0 and open(back, "rb").read() == open(payload, "rb").read():
            ok += 1
        else:
            print(run.stderr[-400:])
    check("OpenSSH sftp puts and gets through the balancer with one pinned host key", ok == 6, f"{ok} of 6")


def oidc_login(cluster):
    """Authorization code with PKCE, every request on a fresh connection through the balancer."""
    lb = f"http://127.0.0.1:{cluster.lb_http}"
    browser = requests.Session()
    browser.headers["Connection"] = "close"
    served = []

    def fetch(method, url, **kwargs):
        response = browser.request(method, url, allow_redirects=False, timeout=30, **kwargs)
        served.append(response.headers.get("X-Cells-Node", "?"))
        return response

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    redirect = f"{lb}/app/callback"
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect, "scope": "openid profile",
        "state": state, "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
        "code_challenge_method": "S256"})
    discovery = fetch("GET", f"{lb}/oidc/.well-known/openid-configuration").json()
    authorize = fetch("GET", f"{discovery['authorization_endpoint']}?{query}")
    login_url = urllib.parse.urljoin(lb, authorize.headers.get("Location", ""))
    page = fetch("GET", login_url)
    inputs = {}
    for tag in re.findall(r"<input\b[^>]*>", page.text, re.I):
        name = re.search(r"""name\s*=\s*["']([^"']*)["']""", tag)
        value = re.search(r"""value\s*=\s*["']([^"']*)["']""", tag)
        if name:
            inputs[name.group(1)] = value.group(1) if value else ""
    action = re.search(r"""<form\b[^>]*action\s*=\s*["']([^"']*)["']""", page.text, re.I)
    action = urllib.parse.urljoin(login_url, action.group(1) if action else "/oauth2/login")
    submitted = fetch("POST", action, data={**inputs, "login": "admin", "password": PASSWORD})
    callback = urllib.parse.urlparse(submitted.headers.get("Location", ""))
    params = urllib.parse.parse_qs(callback.query)
    code = params.get("code", [""])[0]
    tokens = fetch("POST", discovery["token_endpoint"], auth=(CLIENT_ID, CLIENT_SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
        "code_verifier": verifier})
    access = tokens.json().get("access_token", "") if tokens.status_code == 200 else ""
    api = fetch("GET", f"{lb}/a/config/ctl", headers={"Authorization": f"Bearer {access}"})
    nodes = set(served) - {"?"}
    check("a browser-style OpenID login through the balancer gets tokens that work",
          params.get("state", [""])[0] == state and bool(code) and api.status_code == 200,
          f"authorize {authorize.status_code}, login page {page.status_code}, login {submitted.status_code}, "
          f"token {tokens.status_code}, API {api.status_code}")
    check("the login's pages were served by different nodes", len(nodes) >= 2, f"served by {served}")


def throttling(cluster, token):
    """Failed logins from 127.0.0.2 through the balancer throttle 127.0.0.2, not 127.0.0.3."""
    statuses = [status_of(cluster.lb_http, "PROPFIND", "/dav/personal-files/",
                          {**basic("nobody", "wrong"), "Depth": "0"}, source="127.0.0.2")[0]
                for _ in range(25)]
    # The nodes share their counts four times a second: by now each has them all.
    time.sleep(1)
    sprayer = status_of(cluster.lb_http, "PROPFIND", "/dav/personal-files/",
                        {**basic("admin", token), "Depth": "0"}, source="127.0.0.2")[0]
    other = status_of(cluster.lb_http, "PROPFIND", "/dav/personal-files/",
                      {**basic("admin", token), "Depth": "0"}, source="127.0.0.3")[0]
    check("per-address throttling through the balancer sees the client's own address",
          set(statuses) <= {401, 429} and sprayer == 429 and other == 207,
          f"sprayer's failures {sorted(set(statuses))}, sprayer then {sprayer}, another client {other}")


def revocation(cluster, label):
    """A PAT revoked through node 1 is refused by the other nodes alive within the bound."""
    token = cluster.cli("admin", "user", "token", "-u", "admin", "-e", "1h", "-l", "revoked", "-q")
    auth = {"Authorization": f"Bearer {token}"}
    others = [node for node in cluster.nodes[1:] if node.process.poll() is None]
    ready = all(status_of(node.port, "GET", "/a/config/ctl", auth)[0] == 200 for node in others)
    revoked = status_of(cluster.nodes[0].port, "POST", "/a/auth/token/revoke",
                        {**auth, "Content-Type": "application/json"}, b"{}")[0]
    started = time.monotonic()
    delays = {}
    while len(delays) < len(others) and time.monotonic() - started < 10:
        for node in others:
            if node.number not in delays and status_of(node.port, "GET", "/a/config/ctl", auth)[0] == 401:
                delays[node.number] = round(time.monotonic() - started, 3)
        time.sleep(0.01)
    figures[f"revocation_delay_s_{label}"] = delays
    slowest = max(delays.values()) if len(delays) == len(others) else None
    check(f"a PAT revoked on one node is refused by the others within {REVOCATION_BOUND:g} s ({label})",
          ready and revoked == 200 and slowest is not None and slowest <= REVOCATION_BOUND,
          f"accepted before: {ready}, revoke {revoked}, refused after {delays} s")


def main():
    work = tempfile.mkdtemp(prefix="cells-cluster-")
    started = time.monotonic()
    cluster = None
    try:
        cluster = Cluster(work)
        token = cluster.cli("admin", "user", "token", "-u", "admin", "-e", "2h", "-l", "cluster", "-q")
        revocation(cluster, "three nodes")
        if not GARAGE:
            # What the store does not change: run once, on the quick store.
            throttling(cluster, token)
            oidc_login(cluster)
            litmus(cluster, token, work)
        sftp(cluster, token, work)
        copies(cluster, token, work)
        if GARAGE:
            sftp(cluster, token, work)
        revocation(cluster, "after the kill")
    finally:
        if cluster:
            cluster.close()
        figures["elapsed_s"] = round(time.monotonic() - started, 1)
        print("figures: " + json.dumps(figures))
        if results["failed"] == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")
    print(f"cluster{' on Garage' if GARAGE else ''}: {results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
