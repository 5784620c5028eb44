#!/usr/bin/env bash
# Apache httpd with mod_auth_openidc in front of cells' OpenID provider, over cells' own HTTPS
# (--tls-self-signed; Apache and Chromium verify that certificate, they never skip validation):
#   1. login client (RP): headless Chromium signs in to /protected/, a CGI shows the claims
#   2. resource server, local JWT check with the JWKS: ES256 and RS256 access tokens pass,
#      garbage is refused, EdDSA is refused too (cjose has no EdDSA: documented, not a bug of ours)
#   3. resource server, introspection: a personal access token passes, once revoked it is refused
#   4. the Cells documentation's `cells-curl` client (seed 003, response types code+token+id_token)
#      loads with a warning instead of stopping the server
#
#   CELLS_BIN   the server binary [default: ${CARGO_TARGET_DIR:-target}/debug/cells]
#
# Installs what is missing with apt-get (apache2, libapache2-mod-auth-openidc, chromium, nodejs,
# npm, curl, jq) and playwright-core (apache-oidc/package.json). Builds nothing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh" # $bin, free_port
if [[ "$bin" != /* ]]; then
    if [[ -x "$PWD/$bin" ]]; then bin="$PWD/$bin"; else bin="$root/$bin"; fi
fi
[[ -x "$bin" ]] || { echo "apache-oidc.sh: no cells binary at $bin (build it, or set CELLS_BIN)" >&2; exit 2; }

modules=/usr/lib/apache2/modules
missing=()
command -v apache2 >/dev/null || missing+=(apache2)
[[ -e $modules/mod_auth_openidc.so ]] || missing+=(libapache2-mod-auth-openidc)
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
for tool in curl jq openssl; do command -v $tool >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
    apt-get update -qq
    # policy-rc.d keeps the packaged apache2 service from starting; ours runs on its own config.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ! -d $here/apache-oidc/node_modules/playwright-core ]]; then
    (cd "$here/apache-oidc" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cells-apache.XXXXXX")
chmod 711 "$work" # Apache's children (www-data) read the CGI and the CA file under $work/httpd
port=$(free_port) sftp_port=$(free_port) aport=$(free_port)
url="https://127.0.0.1:$port" app="http://127.0.0.1:$aport"
data="$work/data" conf="$work/httpd/httpd.conf" cells_log="$work/cells.log"
password="apache-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
server=""
cleanup() {
    if [[ -f $work/httpd/httpd.pid ]]; then apache2 -f "$conf" -k stop 2>/dev/null || true; fi
    for _ in $(seq 50); do [[ -f $work/httpd/httpd.pid ]] || break; sleep 0.1; done
    if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    echo "--- Apache error log (tail)"; tail -n 25 "$work/httpd/error.log" 2>/dev/null || true
    echo "--- cells log (tail)"; tail -n 25 "$cells_log" 2>/dev/null || true
    exit 1
}
# status URL [curl args...]: the HTTP status of a GET
status() { local u=$1; shift; curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$@" "$u"; }

start_cells_tls() { # lib.sh's start_cells has no TLS and no clients
    mkdir -m 700 "$data"
    local cc='"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"'
    cat >"$data/pydio.json" <<EOF
{"services": {"pydio.web.oauth": {"staticClients": [
  {"client_id": "apache", "client_secret": "apache-secret", "grant_types": ["authorization_code"],
   "response_types": ["code"], "redirect_uris": ["$app/protected/redirect_uri"], "scope": "openid profile email",
   "token_endpoint_auth_method": "client_secret_basic", "skip_consent": true},
  {"client_id": "es-client", "client_secret": "es-secret", $cc},
  {"client_id": "rs-client", "client_secret": "rs-secret", $cc, "access_token_signed_response_alg": "RS256"},
  {"client_id": "ed-client", "client_secret": "ed-secret", $cc, "access_token_signed_response_alg": "EdDSA"},
  {"client_id": "proxy", "client_secret": "proxy-secret", $cc, "introspect_personal_tokens": true},
  {"client_id":"cells-curl","client_name":"cells-curl","client_secret":"password","grant_types":["authorization_code"],"response_types":["code","token","id_token"],"redirect_uris":["http://mypydio.localhost:8080/oauth2/oob"]}
]}}}
EOF
    CELLS_LOG=warn CELLS_ADMIN_LOGIN=admin CELLS_ADMIN_PASSWORD="$password" \
        "$bin" start --data "$data" --bind "127.0.0.1:$port" --sftp-bind "127.0.0.1:$sftp_port" \
        --tls-self-signed >"$cells_log" 2>&1 </dev/null &
    server=$!
    ca="$data/tls/self-signed-cert.pem"
    for _ in $(seq 150); do
        kill -0 "$server" 2>/dev/null || fail "cells exited at start (seed 003's cells-curl client?)"
        [[ -s $ca && $(status "$url/healthz" --cacert "$ca") == 200 ]] && return
        sleep 0.2
    done
    fail "cells did not answer 200 on $url/healthz with its own certificate"
}

# 4. Seed 003: the server is up with cells-curl loaded; code flow only, and a warning says so.
check_seed_client() {
    grep -q 'implicit and hybrid responses are not served.*client=cells-curl' "$cells_log" ||
        fail "no warning about cells-curl's token/id_token response types in the cells log"
    local auth loc
    auth=$(curl -sS --cacert "$ca" "$url/oidc/.well-known/openid-configuration" | jq -r .authorization_endpoint)
    loc=$(curl -sS --cacert "$ca" -o /dev/null -w '%{redirect_url}' \
        "$auth?response_type=code&client_id=cells-curl&cells_secret=password&redirect_uri=http://mypydio.localhost:8080/oauth2/oob&state=12345678")
    [[ $loc == "$url/oauth2/login?"* ]] || fail "seed 003's authorization URL did not lead to the login page: '$loc'"
    ok "seed 003 client cells-curl (code, token, id_token) loads; warning logged; its code request reaches the login page"
}

start_apache() {
    mkdir -p "$work/httpd/cgi" "$work/httpd/htdocs" "$work/httpd/run"
    chmod -R 755 "$work/httpd"
    # mod_auth_openidc's curl calls verify cells' certificate against this file (root-only in DATA/tls).
    install -m 644 "$ca" "$work/httpd/cells-ca.pem"
    # ... and a CA file without it, for the negative control (check_tls_verified).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=not-cells -days 1 \
        -keyout /dev/null -out "$work/httpd/other-ca.pem" 2>/dev/null
    chmod 644 "$work/httpd/other-ca.pem"
    cat >"$work/httpd/cgi/whoami" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\n\n'
printf 'remote_user=%s\npreferred_username=%s\nsub=%s\nname=%s\n' \
    "$REMOTE_USER" "$OIDC_CLAIM_preferred_username" "$OIDC_CLAIM_sub" "$OIDC_CLAIM_name"
EOF
    chmod 755 "$work/httpd/cgi/whoami"
    local user=""
    (($(id -u) == 0)) && user=$'User www-data\nGroup www-data'
    cat >"$conf" <<EOF
ServerRoot $work/httpd
ServerName 127.0.0.1
Listen 127.0.0.1:$aport
PidFile $work/httpd/httpd.pid
DefaultRuntimeDir $work/httpd/run
ErrorLog $work/httpd/error.log
LogLevel warn auth_openidc:info
$user
StartServers 2
DocumentRoot $work/httpd/htdocs
LoadModule mpm_prefork_module $modules/mod_mpm_prefork.so
LoadModule authn_core_module $modules/mod_authn_core.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule authz_user_module $modules/mod_authz_user.so
LoadModule alias_module $modules/mod_alias.so
LoadModule cgi_module $modules/mod_cgi.so
LoadModule auth_openidc_module $modules/mod_auth_openidc.so
ScriptAliasMatch ^/(protected|rs-jwt|rs-pat)/\$ $work/httpd/cgi/whoami

OIDCCABundlePath $work/httpd/cells-ca.pem
OIDCCryptoPassphrase $(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

# mod_auth_openidc takes the resource-server settings per server, and uses introspection
# whenever an introspection endpoint is set: JWT checks and introspection need two virtual
# hosts (by name, on the same port).
<VirtualHost 127.0.0.1:$aport>
    ServerName 127.0.0.1
    OIDCProviderMetadataURL $url/oidc/.well-known/openid-configuration
    OIDCClientID apache
    OIDCClientSecret apache-secret
    OIDCRedirectURI $app/protected/redirect_uri
    OIDCScope "openid profile email"
    OIDCPKCEMethod S256
    OIDCRemoteUserClaim preferred_username
    <Location /protected/>
        AuthType openid-connect
        Require valid-user
    </Location>

    OIDCOAuthVerifyJwksUri $url/oidc/.well-known/jwks.json
    <Location /rs-jwt/>
        AuthType oauth20
        Require valid-user
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:$aport>
    ServerName localhost
    OIDCOAuthIntrospectionEndpoint $url/oidc/oauth2/introspect
    OIDCOAuthIntrospectionEndpointAuth client_secret_basic
    OIDCOAuthClientID proxy
    OIDCOAuthClientSecret proxy-secret
    OIDCOAuthRemoteUserClaim username
    <Location /rs-pat/>
        AuthType oauth20
        # Introspect at every request: by default a result is cached until the token's exp,
        # so a revoked PAT would still pass here for up to its whole lifetime.
        OIDCOAuthTokenIntrospectionInterval -1
        Require valid-user
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:$aport>
    ServerName wrong-ca.localhost
    OIDCCABundlePath $work/httpd/other-ca.pem
    OIDCOAuthVerifyJwksUri $url/oidc/.well-known/jwks.json
    <Location /rs-jwt/>
        AuthType oauth20
        Require valid-user
    </Location>
</VirtualHost>
EOF
    apache2 -f "$conf" -k start || fail "apache2 did not start"
    for _ in $(seq 50); do [[ $(status "$app/") != 000 ]] && return; sleep 0.1; done
    fail "Apache does not answer on $app"
}

# Negative control, run before any JWKS is cached: trusting another CA, the same token fails.
check_tls_verified() {
    local t code
    t=$(client_token es-client es-secret)
    code=$(status "http://wrong-ca.localhost:$aport/rs-jwt/" --resolve "wrong-ca.localhost:$aport:127.0.0.1" \
        -H "Authorization: Bearer $t")
    [[ $code == 401 ]] || fail "a vhost whose CA file lacks cells' certificate: HTTP $code, expected 401"
    grep -q 'SSL certificate problem' "$work/httpd/error.log" || fail "no TLS verification error in Apache's log"
    ok "mod_auth_openidc verifies cells' certificate (with another CA file: 'SSL certificate problem', 401)"
}

# 1. Login client: the browser script prints its own ok:/FAIL: lines.
check_rp() {
    local spki
    spki=$(openssl x509 -in "$ca" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
    APP="$app/protected/" ISSUER="$url/oidc" ADMIN=admin PASSWORD="$password" SPKI="$spki" \
        node "$here/apache-oidc/login.mjs" || fail "mod_auth_openidc login (RP)"
}

client_token() { # CLIENT SECRET: a client_credentials access token
    curl -sS --cacert "$ca" -u "$1:$2" -d grant_type=client_credentials "$url/oidc/oauth2/token" | jq -r .access_token
}
jwt_alg() { cut -d. -f1 <<<"$1" | tr '_-' '/+' | base64 -d 2>/dev/null | jq -r .alg; }

# 2. Resource server with local JWT checks against the JWKS.
check_rs_jwt() {
    local c t code
    for c in es rs; do
        t=$(client_token "$c-client" "$c-secret")
        code=$(status "$app/rs-jwt/" -H "Authorization: Bearer $t")
        [[ $code == 200 ]] || fail "/rs-jwt/ with $c-client's $(jwt_alg "$t") access token: HTTP $code, expected 200"
        ok "/rs-jwt/ accepts $c-client's $(jwt_alg "$t") access token (checked with the JWKS)"
    done
    code=$(status "$app/rs-jwt/" -H "Authorization: Bearer not.a.jwt")
    [[ $code == 401 ]] || fail "/rs-jwt/ with a garbage token: HTTP $code, expected 401"
    ok "/rs-jwt/ refuses a garbage token (401)"
    t=$(client_token ed-client ed-secret)
    code=$(status "$app/rs-jwt/" -H "Authorization: Bearer $t")
    [[ $code == 401 ]] || fail "/rs-jwt/ with an $(jwt_alg "$t") token: HTTP $code; expected 401 (cjose has no EdDSA)"
    ok "/rs-jwt/ refuses ed-client's $(jwt_alg "$t") access token (401: mod_auth_openidc's cjose has no EdDSA)"
}

# 3. Resource server checking a personal access token by introspection.
check_rs_pat() {
    local pat id code
    pat=$("$bin" admin user token -u admin -e 2h -l apache-pat -q --data "$data" 2>>"$work/admin.log")
    code=$(status "http://localhost:$aport/rs-pat/" --resolve "localhost:$aport:127.0.0.1" -H "Authorization: Bearer $pat")
    [[ $code == 200 ]] || fail "/rs-pat/ with a personal access token: HTTP $code, expected 200"
    ok "/rs-pat/ accepts admin's personal access token (introspection by client proxy)"
    id=$("$bin" admin user token list -u admin --data "$data" 2>>"$work/admin.log" | awk '$3 == "apache-pat" { print $1 }')
    [[ -n $id ]] || fail "token list shows no token labelled apache-pat"
    "$bin" admin user token revoke "$id" --data "$data" >/dev/null 2>>"$work/admin.log"
    code=$(status "http://localhost:$aport/rs-pat/" --resolve "localhost:$aport:127.0.0.1" -H "Authorization: Bearer $pat")
    [[ $code == 401 ]] || fail "/rs-pat/ with the revoked personal access token: HTTP $code, expected 401"
    ok "/rs-pat/ refuses it once revoked (401)"
}

start_cells_tls
ok "cells serves $url with its self-signed certificate"
check_seed_client
start_apache
ok "$(apache2 -v | sed -n 's/^Server version: //p') with mod_auth_openidc $(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null || echo '?') on $app"
check_tls_verified
check_rp
check_rs_jwt
check_rs_pat
echo "apache-oidc: all checks passed"
