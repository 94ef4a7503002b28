#!/usr/bin/env bash
# make check's proof that no time bomb is left: the unit suites, and the e2e suites that
# depend on dates (budgets and their months, limits, the CLI's reports), run again with the
# wall clock frozen at three instants: two seconds before a UTC month (and a day) ends, a
# leap day, and one second before a year ends. libfaketime (Debian `faketime`) fakes only
# the wall clock here (FAKETIME_DONT_FAKE_MONOTONIC=1): timers and timeouts run on the
# monotonic clock, as they do in tollgate. In the e2e runs only the tollgate processes see
# the fake date (tests/e2e/lib/harness.mjs, TOLLGATE_FAKETIME), so a test that took a month
# or a day from its own clock instead of from what tollgate recorded fails here.
# Usage: scripts/faketime-check.sh UNIT_BINARY...
set -u
cd "$(dirname "$0")/.."
lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
[ -n "$lib" ] || { echo "faketime-check: libfaketime not found (Debian package faketime)" >&2; exit 1; }
# Issue 14 adds the files whose checks are instants: JWT exp/nbf/iat, signature timestamps,
# key expiry and grace, the audit trail's days, admin tokens' expiry.
E2E=(tests/e2e/budget.test.mjs tests/e2e/limits.test.mjs tests/e2e/cli.test.mjs tests/e2e/jwt.test.mjs
     tests/e2e/signed.test.mjs tests/e2e/keyrotate.test.mjs tests/e2e/audit.test.mjs
     tests/e2e/adminapi.test.mjs tests/e2e/adminapi-keys.test.mjs)
fail=0
for t in "2027-01-31 23:59:58" "2028-02-29 12:00:00" "2027-12-31 23:59:59"; do
  echo "faketime-check: the clock at $t UTC"
  TZ=UTC FAKETIME_DONT_FAKE_MONOTONIC=1 LD_PRELOAD="$lib" FAKETIME="$t" scripts/run-unit.sh "$@" || fail=1
  if ! TOLLGATE_FAKETIME="$t" TOLLGATE_FAKETIME_LIB="$lib" \
      node --test --test-concurrency="${E2E_JOBS:-3}" --test-reporter=dot "${E2E[@]}"; then
    fail=1
  fi
done
[ $fail -eq 0 ] && echo "faketime-check: ok" || { echo "faketime-check: FAILED" >&2; exit 1; }
