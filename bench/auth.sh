#!/usr/bin/env bash
# Issue 3 (b, c): the cost of authentication on a cheap REST call, per kind of credential.
#
# wrk measures requests/s of one authenticated call with:
#   - Authorization: Bearer PAT, hard limit   (cells admin user token -e 24h)
#   - Authorization: Bearer PAT, auto refresh (cells admin user token -a 600)
#   - Basic admin:password, password cache warm (the Argon2 check ran once before)
#   - Basic admin:PAT                          (the hard-limit token as the password)
# and, as the reference, the unauthenticated GET /healthz (one database ping), run first and
# again last to show how much the machine drifts. Each rate is printed with its ratio to the
# first /healthz run. /metrics (cells_token_use_writes_total) is read around every run to
# count the token rows written to record uses: coalesced, it should stay a few per window.
#
# Usage: bench/auth.sh   (after cargo build --release)
# Environment:
#   CELLS_BIN               binary [target/release/cells, or $CARGO_TARGET_DIR/release/cells]
#   BENCH_WRK_THREADS       wrk -t [2]
#   BENCH_WRK_CONNECTIONS   wrk -c [16]
#   BENCH_WRK_DURATION      wrk -d, each run [5s]
#   BENCH_AUTH_ROUTE        stats: POST /a/tree/stats {"NodePaths":["personal-files"]} [default]
#                           ctl:   GET /a/config/ctl (no tree work at all: auth cost only)
#   BENCH_AUTO_REFRESH      window of the auto-refresh token, seconds [600]
#   BENCH_START_TIMEOUT     seconds to wait for /healthz [60]
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

THREADS=${BENCH_WRK_THREADS:-2}
CONNECTIONS=${BENCH_WRK_CONNECTIONS:-16}
DURATION=${BENCH_WRK_DURATION:-5s}
ROUTE=${BENCH_AUTH_ROUTE:-stats}
WINDOW=${BENCH_AUTO_REFRESH:-600}
check_count BENCH_WRK_THREADS "$THREADS"
check_count BENCH_WRK_CONNECTIONS "$CONNECTIONS"
check_count BENCH_AUTO_REFRESH "$WINDOW"
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "BENCH_WRK_DURATION must look like 5s, not '$DURATION'"
case $ROUTE in
  stats)
    METHOD=POST PATH_=/a/tree/stats BODY='{"NodePaths":["personal-files"]}'
    ;;
  ctl)
    METHOD=GET PATH_=/a/config/ctl BODY=''
    ;;
  *) die "BENCH_AUTH_ROUTE must be stats or ctl, not '$ROUTE'" ;;
esac

resolve_cells_bin
for tool in curl python3 awk base64; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
ensure_tool wrk

setup_workdir
start_server

log "creating two personal access tokens with the CLI"
PAT_HARD=$(cells_cli admin user token -u "$ADMIN_LOGIN" -e 24h -l bench-hard -q)
PAT_AUTO=$(cells_cli admin user token -u "$ADMIN_LOGIN" -a "$WINDOW" -l bench-auto -q)
[[ -n $PAT_HARD && -n $PAT_AUTO ]] || die "the CLI printed no token"

basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }

# label|Authorization header|whether a token authenticates it
CREDS=(
  "Bearer PAT, hard limit (-e 24h)|Bearer $PAT_HARD|token"
  "Bearer PAT, auto refresh (-a $WINDOW)|Bearer $PAT_AUTO|token"
  "Basic admin:password (cache warm)|$(basic "$ADMIN_LOGIN" "$ADMIN_PASSWORD")|password"
  "Basic admin:PAT (hard limit)|$(basic "$ADMIN_LOGIN" "$PAT_HARD")|token"
)

# The counter, or nothing when this build has no /metrics.
token_writes() {
  { ccurl --max-time 5 "$BASE_URL/metrics" 2>/dev/null || true; } |
    awk '$1 == "cells_token_use_writes_total" { print $2 }'
}
if [[ -z $(token_writes) ]]; then
  warn "this build has no /metrics counter cells_token_use_writes_total: token writes are not counted"
fi

# One request per credential before any timing: it must work (a wrk run of 401s would measure
# nothing), and the Basic password pays its Argon2 check here rather than inside the run.
TOKEN_REQUESTS=0
request_args() { # AUTHORIZATION
  local -a args=(-X "$METHOD" -H "Authorization: $1")
  if [[ -n $BODY ]]; then
    args+=(-H 'Content-Type: application/json' -d "$BODY")
  fi
  printf '%s\0' "${args[@]}"
}
for entry in "${CREDS[@]}"; do
  IFS='|' read -r label authorization kind <<<"$entry"
  mapfile -d '' -t args < <(request_args "$authorization")
  expect_status 200 "$label" "${args[@]}" "$BASE_URL$PATH_"
  if [[ $kind == token ]]; then
    TOKEN_REQUESTS=$((TOKEN_REQUESTS + 1))
  fi
done

LABELS=()
RPS=()
WRITES=()
AUTO_REQUESTS="" AUTO_SECONDS="" AUTO_WRITES=""

measure() { # LABEL METHOD PATH BODY AUTHORIZATION KIND
  local before after writes=- args
  if [[ $6 != none ]]; then
    # Again right before the run: the password cache only lasts 5 minutes.
    mapfile -d '' -t args < <(request_args "$5")
    expect_status 200 "$1" "${args[@]}" "$BASE_URL$3"
    if [[ $6 == token ]]; then
      TOKEN_REQUESTS=$((TOKEN_REQUESTS + 1))
    fi
  fi
  before=$(token_writes)
  run_wrk "$1" "$THREADS" "$CONNECTIONS" "$DURATION" "$2" "$3" "$4" "$5"
  after=$(token_writes)
  if [[ -n $before && -n $after ]]; then
    writes=$((after - before))
  fi
  LABELS+=("$1")
  RPS+=("$WRK_RPS")
  WRITES+=("$writes")
  if [[ $6 == token ]]; then
    TOKEN_REQUESTS=$((TOKEN_REQUESTS + WRK_REQUESTS))
  fi
  if [[ $1 == *"auto refresh"* ]]; then
    AUTO_REQUESTS=$WRK_REQUESTS AUTO_SECONDS=$WRK_SECONDS AUTO_WRITES=$writes
  fi
}

measure "GET /healthz (no credential)" GET /healthz "" "" none
for entry in "${CREDS[@]}"; do
  IFS='|' read -r label authorization kind <<<"$entry"
  if [[ $label == *"auto refresh"* ]]; then
    # A fresh one: with a short BENCH_AUTO_REFRESH window the first token may have expired,
    # unused, during the runs before this one (which is what auto refresh means).
    PAT_AUTO=$(cells_cli admin user token -u "$ADMIN_LOGIN" -a "$WINDOW" -l bench-auto -q)
    authorization="Bearer $PAT_AUTO"
  fi
  measure "$label" "$METHOD" "$PATH_" "$BODY" "$authorization" "$kind"
done
measure "GET /healthz again (drift check)" GET /healthz "" "" none
TOTAL_WRITES=$(token_writes)

# --- summary --------------------------------------------------------------------------------
BASE_RPS=${RPS[0]}
row() { printf '%-40s %10s %12s %8s %14s\n' "$@"; }
{
  printf '\n== cells bench/auth.sh: %s %s, wrk -t%s -c%s -d%s ==\n' "$METHOD" "$PATH_" "$THREADS" "$CONNECTIONS" "$DURATION"
  print_context
  printf '\n'
  row "credential" "req/s" "vs /healthz" "target" "token writes"
  row "----------------------------------------" "----------" "------------" "--------" "--------------"
  for i in "${!LABELS[@]}"; do
    r=$(ratio "${RPS[i]}" "$BASE_RPS")
    if ((i == 0)); then
      verdict=""
    elif [[ ${LABELS[i]} == *healthz* ]]; then
      verdict="(noise)"
    else
      verdict=$(awk -v r="$r" 'BEGIN { print (r >= 0.9 ? "ok" : "< 0.9") }')
    fi
    row "${LABELS[i]}" "${RPS[i]}" "$r" "$verdict" "${WRITES[i]}"
  done
  printf '\nAuto-refresh token (-a %s: uses are written at most every %s s):\n' "$WINDOW" \
    "$(awk -v w="$WINDOW" 'BEGIN { f = w / 4; if (f < 0.25) f = 0.25; if (f > 60) f = 60; print f }')"
  if [[ $AUTO_WRITES == - ]]; then
    printf '  token writes: n/a (no /metrics in this build), %s requests in %s s\n' "$AUTO_REQUESTS" "$AUTO_SECONDS"
  else
    printf '  %s token writes for %s requests in %s s: %s writes/s, %s writes per 1000 requests\n' \
      "$AUTO_WRITES" "$AUTO_REQUESTS" "$AUTO_SECONDS" "$(ratio "$AUTO_WRITES" "$AUTO_SECONDS" 2)" \
      "$(awk -v w="$AUTO_WRITES" -v n="$AUTO_REQUESTS" 'BEGIN { printf "%.3f", (n > 0 ? 1000 * w / n : 0) }')"
    printf '  whole run: cells_token_use_writes_total = %s for %s token-authenticated requests\n' \
      "$TOTAL_WRITES" "$TOKEN_REQUESTS"
  fi
  printf '\nTargets (issue 3): authenticated / unauthenticated >= 0.9; a few token writes per window, not one per request.\n'
}
