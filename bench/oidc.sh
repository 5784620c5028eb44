#!/usr/bin/env bash
# Issue 4 (acceptance 5): our OpenID provider against oidc-provider (npm, panva; OpenID-certified),
# both on this machine, each with one confidential client `bench` that has the
# client_credentials grant. Same load tool and settings for both (wrk -t2 -c16 -d5s by default):
#
#   1. token:      POST token endpoint, grant_type=client_credentials, client in HTTP Basic
#   2. introspect: POST introspection endpoint (RFC 7662), token=<one valid access token
#                  obtained just before the run>, client in HTTP Basic
#
# and prints requests/s and p99 latency of each side, and the ratio cells / oidc-provider
# (target: >= 5). Every answer during the wrk runs must be 200 with the expected JSON member
# (access_token, or "active": true): the wrk script counts the others, and any fails the run.
#
# oidc-provider is installed with npm into the temp dir (or taken from BENCH_OIDC_PROVIDER_DIR)
# and runs on Node with its in-memory adapter, its default opaque access tokens and an RSA
# signing key made at start-up; it is stopped on exit like our server.
#
# Usage: bench/oidc.sh   (after cargo build --release)
# Environment:
#   CELLS_BIN                     binary [target/release/cells, or $CARGO_TARGET_DIR/release/cells]
#   BENCH_WRK_THREADS             wrk -t [2]
#   BENCH_WRK_CONNECTIONS         wrk -c [16]
#   BENCH_WRK_DURATION            wrk -d, each measured run [5s]
#   BENCH_WRK_WARMUP              wrk -d of an unmeasured run before each side's first run; 0: none [1s]
#   BENCH_RUNS                    measured runs per side and operation, alternating sides; the
#                                 table shows the median of each [3]
#   BENCH_OIDC_PROVIDER_VERSION   npm version spec of oidc-provider [9]
#   BENCH_OIDC_PROVIDER_DIR       a folder whose node_modules has oidc-provider: no npm install
#   BENCH_START_TIMEOUT           seconds to wait for either server [60]
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

THREADS=${BENCH_WRK_THREADS:-2}
CONNECTIONS=${BENCH_WRK_CONNECTIONS:-16}
DURATION=${BENCH_WRK_DURATION:-5s}
WARMUP=${BENCH_WRK_WARMUP:-1s}
OP_VERSION=${BENCH_OIDC_PROVIDER_VERSION:-9}
OP_DIR=${BENCH_OIDC_PROVIDER_DIR:-}
RUNS=${BENCH_RUNS:-3}
check_count BENCH_RUNS "$RUNS"
check_count BENCH_WRK_THREADS "$THREADS"
check_count BENCH_WRK_CONNECTIONS "$CONNECTIONS"
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "BENCH_WRK_DURATION must look like 5s, not '$DURATION'"
[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "BENCH_WRK_WARMUP must look like 1s or 0, not '$WARMUP'"
if [[ -n $OP_DIR && ! -f $OP_DIR/node_modules/oidc-provider/package.json ]]; then
  die "BENCH_OIDC_PROVIDER_DIR=$OP_DIR has no node_modules/oidc-provider"
fi
if ((THREADS > CONNECTIONS)); then
  THREADS=$CONNECTIONS
fi

CLIENT_ID=bench
CLIENT_SECRET=bench-secret-value

resolve_cells_bin
for tool in curl python3 awk base64; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
ensure_tool wrk
ensure_tool node nodejs
if [[ -z $OP_DIR ]]; then
  ensure_tool npm
fi

# --- temp dir, and a cleanup that also stops oidc-provider -----------------------------------
OP_PID=""
OP_LOG=""
stop_op() {
  local i
  [[ -n $OP_PID ]] || return 0
  if alive "$OP_PID"; then
    kill -TERM "$OP_PID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "$OP_PID" || break
      sleep 0.1
    done
    if alive "$OP_PID"; then
      warn "oidc-provider $OP_PID did not stop on SIGTERM; killing it"
      kill -KILL "$OP_PID" 2>/dev/null || true
    fi
  fi
  wait "$OP_PID" 2>/dev/null || true
  OP_PID=""
}
with_status() { return "$1"; }
cleanup_all() {
  local status=$?
  stop_op
  if [[ $status -ne 0 && -n $OP_LOG && -s $OP_LOG ]]; then
    printf -- '--- last lines of the oidc-provider log ---\n' >&2
    grep -v 'Unsupported runtime' "$OP_LOG" | tail -n 20 >&2 || true
  fi
  # lib.sh's cleanup (our server, its log, the temp dir) reads the status from $? and exits
  # with it. A plain with_status would trip set -e when the status is not 0.
  with_status "$status" || cleanup
  cleanup
}

setup_workdir
trap cleanup_all EXIT

basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }
AUTHORIZATION=$(basic "$CLIENT_ID" "$CLIENT_SECRET")

# Percent-encode stdin for a form body (read from stdin: no token on a command line).
form_encode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))'; }

# json_get KEY < JSON: one top-level member, printed as JSON (strings without quotes); empty
# when missing or when stdin is not a JSON object.
json_get() {
  python3 -c 'import json, sys
try:
    v = json.load(sys.stdin)[sys.argv[1]]
except Exception:
    sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# token_kind TOKEN: "JWT (alg X, typ Y)" or "opaque (N characters)".
token_kind() {
  printf '%s' "$1" | python3 -c 'import base64, json, re, sys
t = sys.stdin.read()
if re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", t):
    h = t.split(".")[0]
    try:
        head = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
        print("JWT (alg %s, typ %s)" % (head.get("alg", "?"), head.get("typ", "-")))
        sys.exit(0)
    except Exception:
        pass
print("opaque (%d characters)" % len(t))'
}

# --- cells ------------------------------------------------------------------------------------
mkdir -m 700 "$DATA_DIR"
cat >"$DATA_DIR/pydio.json" <<JSON
{"services":{"pydio.web.oauth":{"staticClients":[{"client_id":"$CLIENT_ID","client_secret":"$CLIENT_SECRET","grant_types":["client_credentials"],"scope":"pydio"}]}}}
JSON
start_server
CELLS_URL=$BASE_URL

# --- oidc-provider ----------------------------------------------------------------------------
NODE_DIR=$WORK_DIR/node
mkdir -p "$NODE_DIR"
if [[ -n $OP_DIR ]]; then
  ln -s "$(cd "$OP_DIR" && pwd)/node_modules" "$NODE_DIR/node_modules"
  log "oidc-provider from $OP_DIR"
else
  log "npm install oidc-provider@$OP_VERSION (into $NODE_DIR)"
  if ! (cd "$NODE_DIR" && npm init -y && npm install --no-audit --no-fund "oidc-provider@$OP_VERSION") >"$WORK_DIR/npm.log" 2>&1; then
    tail -n 30 "$WORK_DIR/npm.log" >&2
    die "npm install oidc-provider@$OP_VERSION failed"
  fi
fi
OP_PACKAGE_VERSION=$(json_get version <"$NODE_DIR/node_modules/oidc-provider/package.json")
NODE_VERSION=$(node --version)

# The provider, as in PEERS.md A10 but with only what the two operations need: one
# confidential client, client_credentials and introspection, no login pages. Access tokens
# keep oidc-provider's default format, opaque (no resource indicator means no JWT), stored in
# its default in-memory adapter. A real RSA key instead of its development keys.
cat >"$NODE_DIR/op.mjs" <<'JS'
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OP_CLIENT_ID,
    client_secret: process.env.OP_CLIENT_SECRET,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'bench' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: { ClientCredentials: 600 }, // as our default access token lifespan
});
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
JS

start_op() {
  local port code deadline
  port=$(free_port)
  OP_URL=http://127.0.0.1:$port
  OP_LOG=$WORK_DIR/oidc-provider.log
  # Started directly, so $! is node. Its notices go to the log, which is shown only when the run
  # fails, without the "Unsupported runtime" warning of Node < 22 (9.x works on Node 20).
  OP_PORT=$port OP_CLIENT_ID=$CLIENT_ID OP_CLIENT_SECRET=$CLIENT_SECRET NODE_ENV=production \
    node "$NODE_DIR/op.mjs" >"$OP_LOG" 2>&1 &
  OP_PID=$!
  deadline=$((SECONDS + ${BENCH_START_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    alive "$OP_PID" || die "oidc-provider exited during start-up (log: $OP_LOG)"
    code=$(ccurl -o /dev/null -w '%{http_code}' --max-time 2 "$OP_URL/.well-known/openid-configuration" 2>/dev/null) || true
    if [[ $code == 200 ]]; then
      log "oidc-provider $OP_PACKAGE_VERSION (pid $OP_PID, node $NODE_VERSION) ready on $OP_URL"
      return 0
    fi
    sleep 0.2
  done
  die "oidc-provider did not answer its discovery document within ${BENCH_START_TIMEOUT:-60} s"
}
start_op

# --- endpoints from the discovery documents, and one check of each operation ------------------
# discover NAME DISCOVERY_URL BASE: sets TOKEN_EP and INTROSPECT_EP; both must be under BASE
# (we only ever talk to 127.0.0.1).
discover() {
  local name=$1 url=$2 base=$3 doc
  expect_status 200 "$name discovery" "$url"
  doc=$(cat "$WORK_DIR/last-response")
  TOKEN_EP=$(json_get token_endpoint <<<"$doc")
  INTROSPECT_EP=$(json_get introspection_endpoint <<<"$doc")
  [[ -n $TOKEN_EP && -n $INTROSPECT_EP ]] || die "$name: no token_endpoint or introspection_endpoint in $url"
  [[ $TOKEN_EP == "$base"/* && $INTROSPECT_EP == "$base"/* ]] ||
    die "$name: endpoints $TOKEN_EP, $INTROSPECT_EP are not on $base"
}
discover cells "$CELLS_URL/oidc/.well-known/openid-configuration" "$CELLS_URL"
CELLS_TOKEN_EP=$TOKEN_EP CELLS_INTROSPECT_EP=$INTROSPECT_EP
discover oidc-provider "$OP_URL/.well-known/openid-configuration" "$OP_URL"
OP_TOKEN_EP=$TOKEN_EP OP_INTROSPECT_EP=$INTROSPECT_EP

TOKEN_BODY=grant_type=client_credentials

# new_token NAME TOKEN_ENDPOINT: one client_credentials token (must be 200), in ACCESS_TOKEN.
new_token() {
  expect_status 200 "$1 token" -X POST -H "Authorization: $AUTHORIZATION" \
    -H 'Content-Type: application/x-www-form-urlencoded' -d "$TOKEN_BODY" "$2"
  ACCESS_TOKEN=$(json_get access_token <"$WORK_DIR/last-response")
  [[ -n $ACCESS_TOKEN ]] || die "$1: the token answer has no access_token: $(cat "$WORK_DIR/last-response")"
}

# check_active NAME INTROSPECTION_ENDPOINT: introspection of ACCESS_TOKEN must say active.
check_active() {
  local active
  expect_status 200 "$1 introspection" -X POST -H "Authorization: $AUTHORIZATION" \
    -H 'Content-Type: application/x-www-form-urlencoded' --data-binary @- "$2" \
    < <(printf 'token=%s' "$(printf '%s' "$ACCESS_TOKEN" | form_encode)")
  active=$(json_get active <"$WORK_DIR/last-response")
  [[ $active == true ]] || die "$1: introspection of a fresh token is not active: $(cat "$WORK_DIR/last-response")"
}

new_token cells "$CELLS_TOKEN_EP"
CELLS_TOKEN_KIND=$(token_kind "$ACCESS_TOKEN")
check_active cells "$CELLS_INTROSPECT_EP"
new_token oidc-provider "$OP_TOKEN_EP"
OP_TOKEN_KIND=$(token_kind "$ACCESS_TOKEN")
check_active oidc-provider "$OP_INTROSPECT_EP"
log "cells access tokens: $CELLS_TOKEN_KIND; oidc-provider access tokens: $OP_TOKEN_KIND"

# --- wrk --------------------------------------------------------------------------------------
# A POST with a form body and an Authorization header from the environment (no secret on disk
# or on a command line). Every answer must be 200 and its body must match the Lua pattern
# BENCH_EXPECT; the others are counted per thread and summed in done().
WRK_LUA=$WORK_DIR/oidc.lua
cat >"$WRK_LUA" <<'LUA'
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")

local expect = os.getenv("BENCH_EXPECT")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  unexpected = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, expect) then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("unexpected")
  end
  io.write(string.format("Unexpected answers: %d\n", total))
end
LUA

# bench_wrk LABEL URL BODY EXPECT DURATION: sets WRK_RPS, WRK_P99 (ms) and WRK_REQUESTS.
bench_wrk() {
  local label=$1 url=$2 body=$3 expect=$4 duration=$5 out non2xx unexpected
  out=$WORK_DIR/wrk.txt
  log "wrk: $label (POST $url, -t$THREADS -c$CONNECTIONS -d$duration)"
  BENCH_BODY=$body BENCH_AUTHORIZATION=$AUTHORIZATION BENCH_EXPECT=$expect \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency -s "$WRK_LUA" "$url" >"$out" 2>&1 ||
    {
      cat "$out" >&2
      die "wrk failed ($label)"
    }
  sed 's/^/    /' "$out" >&2
  WRK_RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  WRK_REQUESTS=$(awk '/ requests in / { print $1 }' "$out")
  WRK_P99=$(awk '$1 == "99%" {
      v = $2
      if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
      else if (v ~ /ms$/) { sub(/ms$/, "", v) }
      else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
      else { sub(/s$/, "", v); v *= 1000 }
      printf "%.2f", v }' "$out")
  unexpected=$(awk '/^Unexpected answers:/ { print $3 }' "$out")
  [[ -n $WRK_RPS && -n $WRK_REQUESTS && -n $WRK_P99 && -n $unexpected ]] || die "could not read wrk's output ($label)"
  ((WRK_REQUESTS > 0)) || die "$label: wrk completed no request"
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  if [[ -n $non2xx && $non2xx != 0 ]]; then
    die "$label: $non2xx of $WRK_REQUESTS answers were not 2xx/3xx"
  fi
  if [[ $unexpected != 0 ]]; then
    die "$label: $unexpected of $WRK_REQUESTS answers were not 200 with a body matching $expect"
  fi
  if grep -q 'Socket errors' "$out"; then
    warn "$label: wrk reports socket errors ($(grep 'Socket errors' "$out" | sed 's/^ *//'))"
  fi
}

# measure ROUND OPERATION SIDE URL BODY EXPECT: in round 1 a warm-up run (not counted) first;
# the measured run's figures are added to ALL_RPS and ALL_P99.
declare -A RPS P99 ALL_RPS ALL_P99
measure() {
  local round=$1
  shift
  if [[ $round == 1 && $WARMUP != 0 && $WARMUP != 0[smh] ]]; then
    bench_wrk "$1, $2 (warm-up)" "$3" "$4" "$5" "$WARMUP"
  fi
  bench_wrk "$1, $2 (run $round of $RUNS)" "$3" "$4" "$5" "$DURATION"
  ALL_RPS[$1,$2]+="$WRK_RPS "
  ALL_P99[$1,$2]+="$WRK_P99 "
}

# settle OPERATION SIDE: RPS and P99 are the medians of the rounds.
settle() {
  # shellcheck disable=SC2086 # the lists are space-separated numbers
  RPS[$1,$2]=$(median ${ALL_RPS[$1,$2]})
  # shellcheck disable=SC2086
  P99[$1,$2]=$(median ${ALL_P99[$1,$2]})
}

TOKEN_EXPECT='"access_token"%s*:%s*"'
ACTIVE_EXPECT='"active"%s*:%s*true'

# Rounds alternate the sides, so that a slow spell of the machine falls on both.
for ((round = 1; round <= RUNS; round++)); do
  measure "$round" token cells "$CELLS_TOKEN_EP" "$TOKEN_BODY" "$TOKEN_EXPECT"
  measure "$round" token oidc-provider "$OP_TOKEN_EP" "$TOKEN_BODY" "$TOKEN_EXPECT"
done
settle token cells
settle token oidc-provider

# The token to introspect is taken after the token runs: oidc-provider's in-memory adapter
# keeps the last 1000 entries only, and the token runs would have pushed an older one out.
new_token cells "$CELLS_TOKEN_EP"
check_active cells "$CELLS_INTROSPECT_EP"
CELLS_INTROSPECT_BODY="token=$(printf '%s' "$ACCESS_TOKEN" | form_encode)"
new_token oidc-provider "$OP_TOKEN_EP"
check_active oidc-provider "$OP_INTROSPECT_EP"
OP_INTROSPECT_BODY="token=$(printf '%s' "$ACCESS_TOKEN" | form_encode)"

for ((round = 1; round <= RUNS; round++)); do
  measure "$round" introspect cells "$CELLS_INTROSPECT_EP" "$CELLS_INTROSPECT_BODY" "$ACTIVE_EXPECT"
  measure "$round" introspect oidc-provider "$OP_INTROSPECT_EP" "$OP_INTROSPECT_BODY" "$ACTIVE_EXPECT"
done
settle introspect cells
settle introspect oidc-provider

# --- summary ----------------------------------------------------------------------------------
row() { printf '%-12s %11s %12s %13s %13s %16s\n' "$@"; }
{
  printf '\n== cells bench/oidc.sh: cells vs oidc-provider, wrk -t%s -c%s -d%s (warm-up %s), median of %s runs ==\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP" "$RUNS"
  print_context
  printf 'peer:    oidc-provider %s on node %s (in-memory adapter, NODE_ENV=production)\n' \
    "$OP_PACKAGE_VERSION" "$NODE_VERSION"
  printf 'access tokens: cells %s; oidc-provider %s\n' "$CELLS_TOKEN_KIND" "$OP_TOKEN_KIND"
  printf 'client: %s, confidential, client_secret_basic, grant client_credentials\n\n' "$CLIENT_ID"
  row "operation" "cells req/s" "cells p99" "oidc-p req/s" "oidc-p p99" "cells/oidc-p"
  row "------------" "-----------" "------------" "-------------" "-------------" "----------------"
  for op in token introspect; do
    r=$(ratio "${RPS[$op,cells]}" "${RPS[$op,oidc-provider]}" 1)
    verdict=$(awk -v r="$r" 'BEGIN { print (r >= 5 ? "ok" : "< 5") }')
    row "$op" "${RPS[$op,cells]}" "${P99[$op,cells]} ms" "${RPS[$op,oidc-provider]}" \
      "${P99[$op,oidc-provider]} ms" "${r}x ($verdict)"
  done
  for op in token introspect; do
    printf '%s runs, req/s: cells %s; oidc-provider %s\n' "$op" "${ALL_RPS[$op,cells]% }" "${ALL_RPS[$op,oidc-provider]% }"
  done
  printf '\ntoken:      POST %s / %s, %s\n' "${CELLS_TOKEN_EP#"$CELLS_URL"}" "${OP_TOKEN_EP#"$OP_URL"}" "$TOKEN_BODY"
  printf 'introspect: POST %s / %s, token=<one valid access token>\n' \
    "${CELLS_INTROSPECT_EP#"$CELLS_URL"}" "${OP_INTROSPECT_EP#"$OP_URL"}"
  printf '\nTarget (issue 4, acceptance 5): cells / oidc-provider >= 5x in requests/s on both operations.\n'
  printf 'All four programs (two servers, wrk, node) share %s CPUs: compare ratios, not absolute rates.\n' \
    "$(nproc 2>/dev/null || echo '?')"
}
