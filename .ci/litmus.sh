#!/usr/bin/env bash
# litmus (the WebDAV compliance suite) against /dav/personal-files/ with a personal access
# token as the password. Every suite must pass 100%.
set -euo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if ! command -v litmus >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq litmus >/dev/null
fi
start_cells litmus
mkdir "$work/litmus"
cd "$work/litmus"
litmus -k "http://127.0.0.1:$port/dav/personal-files/" admin "$token" >"$work/litmus.log" 2>&1 || true
grep -a "summary for" "$work/litmus.log"
passed=$(grep -a -c "summary for .* 100.0%" "$work/litmus.log" || true)
if [[ $passed -ne 5 ]]; then
    grep -a -E "FAIL|WARNING" "$work/litmus.log" | head -40
    echo "litmus: $passed of 5 suites at 100%" >&2
    exit 1
fi
echo "litmus: 5 passed, 0 failed"
