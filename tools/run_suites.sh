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

# Each Test runs once; each ParameterizedTest once per parameter, which
# its parameters function gives as a literal count:
# cr_make_param_array(TYPE, ARRAY, N).
plain=$(cat test/test_*.c | grep -cE '^Test\(' || true)
params=0
for n in $(cat test/test_*.c | grep -oE 'cr_make_param_array\([^;]*, *[0-9]+\)' |
           sed -E 's/.*, *([0-9]+)\)$/\1/'); do
  params=$((params + n))
done
declared=$(cat test/test_*.c | grep -cE '^ParameterizedTest\(' || true)
counted=$(cat test/test_*.c | grep -cE 'cr_make_param_array\([^;]*, *[0-9]+\)' || true)
if [ "$declared" -ne "$counted" ]; then
  echo "error: $declared parameterized tests, but $counted literal parameter counts" \
       "(cr_make_param_array(TYPE, ARRAY, N))" >&2
  exit 1
fi
expected=$((plain + params))
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
