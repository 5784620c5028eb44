#!/usr/bin/env python3
"""Print an OAuth access token of a cells user, got through the device grant (RFC 8628).

    oauth_token.py BASE_URL LOGIN PASSWORD [CLIENT_ID]

Asks for a device code with the public client (default `cells-client`), approves it as LOGIN on
the server's own verification page (the csrf field comes from that page, the session cookie is
kept), then redeems the device code at the token endpoint, waiting `interval` seconds between
polls. Prints only the access token on stdout; anything else goes to stderr.
"""
import re
import sys
import time
import urllib.parse

import requests


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    base, login, password = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    client_id = sys.argv[4] if len(sys.argv) == 5 else "cells-client"
    http = requests.Session()

    r = http.post(f"{base}/oidc/oauth2/device/auth", data={"client_id": client_id, "scope": "openid"}, timeout=30)
    if r.status_code != 200:
        sys.exit(f"device authorization: HTTP {r.status_code}: {r.text[:500]}")
    dev = r.json()
    for field in ("device_code", "user_code", "verification_uri_complete"):
        if field not in dev:
            sys.exit(f"device authorization: no {field} in {dev}")
    interval = int(dev.get("interval", 5))

    page_url = urllib.parse.urljoin(base + "/", dev["verification_uri_complete"])
    page = http.get(page_url, timeout=30)
    if page.status_code != 200:
        sys.exit(f"verification page {page_url}: HTTP {page.status_code}: {page.text[:500]}")
    csrf = None
    for tag in re.findall(r"<input\b[^>]*>", page.text, re.I):
        if re.search(r"""name\s*=\s*["']csrf["']""", tag, re.I):
            m = re.search(r"""value\s*=\s*["']([^"']*)["']""", tag, re.I)
            csrf = m.group(1) if m else None
    if csrf is None:
        sys.exit(f"verification page {page_url}: no csrf input in:\n{page.text[:1000]}")

    approve = http.post(
        f"{base}/oauth2/device",
        data={"csrf": csrf, "user_code": dev["user_code"], "login": login, "password": password, "decision": "allow"},
        timeout=30,
    )
    if approve.status_code != 200:
        sys.exit(f"approval: HTTP {approve.status_code}: {approve.text[:500]}")

    deadline = time.monotonic() + 120
    while True:
        time.sleep(interval)
        tok = requests.post(
            f"{base}/oidc/oauth2/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": dev["device_code"],
                "client_id": client_id,
            },
            timeout=30,
        )
        body = tok.json() if tok.headers.get("content-type", "").startswith("application/json") else {}
        if tok.status_code == 200 and "access_token" in body:
            print(body["access_token"])
            return
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            sys.exit(f"token: HTTP {tok.status_code}: {tok.text[:500]}")
        if time.monotonic() > deadline:
            sys.exit("token: still pending after 120 s")


if __name__ == "__main__":
    main()
