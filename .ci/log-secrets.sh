#!/usr/bin/env bash
# No secret reaches the log at any level (issue 28, finding 11): a server at CELLS_LOG=trace
# (the most verbose level documented), driven through every protocol with every kind of
# secret, then its whole log searched for each of them.
#
# Secrets used: the admin password (REST Basic, WebDAV Basic, SFTP password, the console's
# sign-in form, Cells' scripted login), a personal access token (Bearer, Basic password, S3
# access key in a header signature and in a presigned URL, with its signature), an OAuth access
# and refresh token (REST Bearer, refresh grant), and an OAuth code and state in the query of
# the out-of-band page.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source .ci/lib.sh

missing=()
command -v sshpass >/dev/null || missing+=(sshpass)
command -v sftp >/dev/null || missing+=(openssh-client)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cells_log=trace start_cells logcheck
password=$admin_password
base="http://127.0.0.1:$port"
secrets=("$password" "$token")

quiet() { curl -sS -o /dev/null "$@" || true; }

# REST and WebDAV, with the password and with the token.
quiet -u "admin:$password" "$base/a/config/ctl"
quiet -H "Authorization: Bearer $token" "$base/a/config/ctl"
quiet -u "admin:$token" -T /etc/hostname "$base/dav/personal-files/hostname.txt"
quiet -u "admin:$password" -X PROPFIND -H 'Depth: 1' "$base/dav/personal-files/"
quiet -u "admin:wrong-$password" "$base/a/config/ctl"

# Cells' scripted login: an OAuth access token and refresh token, then the refresh grant.
session=$(curl -sS "$base/a/frontend/session" \
    -d "{\"AuthInfo\":{\"type\":\"credentials\",\"login\":\"admin\",\"password\":\"$password\"}}")
jwt=$(jq -r '.JWT // empty' <<<"$session")
refresh=$(jq -r '.Token.RefreshToken // empty' <<<"$session")
[[ -n $jwt && -n $refresh ]] || { echo "FAIL: scripted login gave no tokens: $session"; exit 1; }
secrets+=("$jwt" "$refresh")
quiet -H "Authorization: Bearer $jwt" "$base/a/config/ctl"
quiet "$base/a/frontend/session" -d "{\"AuthInfo\":{\"type\":\"refresh\",\"refresh_token\":\"$refresh\"}}"

# The out-of-band page with a code and a state in its query.
code="ory_ac_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
state="st$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
secrets+=("$code" "$state")
quiet "$base/oauth2/oob?code=$code&state=$state"

# S3: a header-signed request and a presigned URL, the token as access key.
presigned=$(TOKEN="$token" BASE="$base" python3 - <<'PY'
import datetime, hashlib, hmac, os, urllib.parse
token, base = os.environ["TOKEN"], os.environ["BASE"]
host = base.split("://", 1)[1]
now = datetime.datetime.now(datetime.timezone.utc)
date, stamp = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
scope = f"{date}/us-east-1/s3/aws4_request"
path = "/io/personal-files/hostname.txt"
query = {
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": f"{token}/{scope}",
    "X-Amz-Date": stamp,
    "X-Amz-Expires": "300",
    "X-Amz-SignedHeaders": "host",
}
canonical_query = "&".join(
    f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(query.items())
)
canonical = f"GET\n{path}\n{canonical_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
key = f"AWS4gatewaysecret".encode()
for part in (date, "us-east-1", "s3", "aws4_request"):
    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
print(f"{base}{path}?{canonical_query}&X-Amz-Signature={signature} {signature}")
PY
)
url=${presigned% *}
signature=${presigned##* }
secrets+=("$signature")
s3_status=$(curl -sS -o /dev/null -w '%{http_code}' "$url")
[[ $s3_status == 200 ]] || { echo "FAIL: the presigned GET answered $s3_status"; exit 1; }
quiet --aws-sigv4 "aws:amz:us-east-1:s3" --user "$token:gatewaysecret" "$base/io/personal-files/"

# SFTP with the password, then with the token.
for secret in "$password" "$token"; do
    printf 'ls /personal-files\n' | sshpass -p "$secret" sftp -P "$sftp_port" -o BatchMode=no \
        -o PubkeyAuthentication=no -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o ConnectTimeout=10 -b - admin@127.0.0.1 >/dev/null 2>&1 || true
done

# The console's sign-in form.
jar="$work/cookies"
page=$(curl -sS -c "$jar" "$base/login")
csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' <<<"$page" | head -n 1)
quiet -b "$jar" -c "$jar" --data-urlencode "csrf=$csrf" --data-urlencode "login=admin" \
    --data-urlencode "password=$password" --data-urlencode "next=/files/" "$base/login"

kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
lines=$(wc -l <"$work/server.log")
leaked=0
for secret in "${secrets[@]}"; do
    # Long secrets are also looked for by their first 24 characters (a truncated print).
    for needle in "$secret" "${secret:0:24}"; do
        if grep -qF -- "$needle" "$work/server.log"; then
            echo "FAIL: a secret (${#secret} characters, starting ${secret:0:4}…) is in the log:"
            grep -nF -- "$needle" "$work/server.log" | head -n 3 | cut -c1-200
            leaked=$((leaked + 1))
            break
        fi
    done
done
if ((lines < 20)); then
    echo "FAIL: the trace log has only $lines lines; it did not log the requests"
    exit 1
fi
if ((leaked > 0)); then
    echo "log secrets: $leaked of ${#secrets[@]} secrets leaked into $lines log lines"
    exit 1
fi
echo "log secrets: 0 of ${#secrets[@]} secrets in $lines log lines at CELLS_LOG=trace"
