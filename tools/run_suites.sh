#!/usr/bin/env bash
# Runs a Criterion test binary and fails unless it passed AND ran every
# test the sources define: a runner that found nothing to run (a missing
# /proc, a broken fork) exits 0 with "Tested: 0", which must not pass.
# With --sanitized, any AddressSanitizer/UBSan report in the output fails
# the run too, whatever the exit status says.
#
#   tools/run_suites.sh [--sanitized] BINARY LOG [CRITERION OPTIONS...]
set -euo pipefail
sanitized=false
if [ "${1:-}" = --sanitized ]; then sanitized=true; shift; fi
bin=$1 log=$2
shift 2

expected=$(cat test/test_*.c | grep -cE '^(Test|ParameterizedTest)\(' || true)
set +e
timeout 900 "$bin" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
tested=$(sed -n 's/.*Synthesis: Tested: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
if [ "$rc" -ne 0 ]; then
  echo "error: $bin exited $rc" >&2
  exit 1
fi
if [ -z "$tested" ] || [ "$tested" -ne "$expected" ]; then
  echo "error: $bin ran ${tested:-no} tests, but test/test_*.c define $expected" >&2
  exit 1
fi
if $sanitized && grep -q 'ERROR: .*Sanitizer\|runtime error:' "$log"; then
  echo "error: sanitizer report above" >&2
  exit 1
fi
echo "$bin: all $tested tests ran and passed"
