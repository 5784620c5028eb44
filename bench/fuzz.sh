#!/usr/bin/env bash
# Issue 28: the generated-input tests of every parser, run long on a release build.
#
#   - the property tests of our parsers (token values, scopes, durations, Basic headers,
#     Range, workspace paths, SFTP packets, S3 request heads, XML bodies, Range lists), each
#     with CELLS_FUZZ_CASES cases [200000];
#   - the live-server round of generated requests (JWTs, SigV4 headers, WebDAV and S3 XML
#     bodies, console multipart forms), BENCH_FUZZ_ROUNDS rounds [3000].
# Passes when nothing panicked, aborted or answered a 5xx; prints the time taken.
#
# Usage: bench/fuzz.sh   (builds the tests in release mode itself)
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${CELLS_FUZZ_CASES:-200000}
rounds=${BENCH_FUZZ_ROUNDS:-3000}
start=$SECONDS
CELLS_FUZZ_CASES=$cases cargo test --release --locked -p cells --lib -- fuzz:: 2>&1 | grep -E '^test |test result'
CELLS_FUZZ_CASES=$cases cargo test --release --locked -p cells-http --lib -- xml:: range:: 2>&1 | grep -E '^test |test result'
echo "property tests: $cases cases each, $((SECONDS - start)) s"
start=$SECONDS
CELLS_FUZZ_CASES=$rounds cargo test --release --locked -p cells --test it -- \
  security::generated_garbage_never_crashes::sqlite 2>&1 | grep -E '^test |test result'
echo "live requests: $rounds rounds of 5, $((SECONDS - start)) s"
