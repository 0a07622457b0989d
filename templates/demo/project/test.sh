#!/bin/sh
# Runs every test in tests/; exits non-zero if one fails.
cd "$(dirname "$0")"
failed=0
for t in tests/test_*.sh; do
    if sh "$t"; then
        echo "ok   $t"
    else
        echo "FAIL $t"
        failed=1
    fi
done
exit $failed
