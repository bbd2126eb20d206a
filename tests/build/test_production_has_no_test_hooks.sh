#!/usr/bin/env bash
# A production build (CLEAVE_TESTS=OFF) knows no test hook: the binaries' generated
# wiring names no test-hooks settings, so CLEAVE_TEST_* keys are unknown there and
# stop start-up (tests/unit/test_config.c shows an absent owner's keys are refused).
# A test build's wiring does name them. Only configures; builds nothing.
# usage: test_production_has_no_test_hooks.sh SOURCE_DIR TEST_BUILD_DIR
set -euo pipefail
src=$1
test_build=$2
work=$(mktemp -d /tmp/cleave-test-prod-hooks-XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake -S "$src" -B "$work" -DCLEAVE_TESTS=OFF >"$work/configure.txt" 2>&1 ||
    { cat "$work/configure.txt"; echo "FAIL: a production configure failed"; exit 1; }
for f in "$work"/app/bindings_*.c; do
    grep -q 'host_test_hooks = NULL;' "$f" ||
        { cat "$f"; echo "FAIL: $(basename "$f") of a production build has test hooks"; exit 1; }
    if grep -qi 'test_hooks\.h\|cleave_test_hooks' "$f"; then
        cat "$f"; echo "FAIL: $(basename "$f") of a production build names the test hooks"; exit 1
    fi
done
grep -q 'host_test_hooks = &cleave_test_hooks;' "$test_build/app/bindings_cleave.c" ||
    { echo "FAIL: the test build's cleave does not know the test hooks"; exit 1; }
echo "OK: only the test build knows CLEAVE_TEST_*"
