#!/usr/bin/env bash
# The build refuses code that reaches into another module's private files: copy the
# tree, check that it passes, add one forbidden include, check that the build fails
# and names the file. Usage: test_boundaries.sh SOURCE_DIR
set -euo pipefail
src=$1
work=$(mktemp -d /tmp/cleave-test-boundaries-XXXXXX)
trap 'rm -rf "$work"' EXIT

tar -C "$src" --exclude=./build --exclude=./.git --exclude=./var -cf - . | tar -C "$work" -xf -

check() { # builds only the boundary check of the copy
    cmake -S "$work" -B "$work/build" -DCLEAVE_TESTS=OFF >/dev/null &&
        cmake --build "$work/build" --target cleave_boundaries >"$work/out.txt" 2>&1
}

check || { cat "$work/out.txt"; echo "FAIL: the untouched tree does not pass the check"; exit 1; }

# The host reaching into the catalog's private implementation.
echo '#include "../modules/catalog/src/catalog.c"' >>"$work/app/health.c"
if check; then
    echo "FAIL: an include of catalog's private source from app/ was accepted"; exit 1
fi
grep -q 'app/health.c: #include "../modules/catalog/src/catalog.c" crosses a module boundary' \
    "$work/out.txt" || { cat "$work/out.txt"; echo "FAIL: the error does not name the file"; exit 1; }

# The platform depending on a module at all.
sed -i '$d' "$work/app/health.c"
check || { cat "$work/out.txt"; echo "FAIL: restoring the file did not pass"; exit 1; }
echo '#include "catalog/catalog.h"' >>"$work/platform/core/module.c"
if check; then
    echo "FAIL: the platform including a module header was accepted"; exit 1
fi
grep -q 'platform/core/module.c' "$work/out.txt" || { cat "$work/out.txt"; exit 1; }
echo "PASS: forbidden includes stop the build and name the file"
