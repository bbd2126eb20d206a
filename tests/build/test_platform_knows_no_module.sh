#!/usr/bin/env bash
# The platform knows no module: no module's name (nor "identity") appears in platform/,
# not even in a comment or an example, so that nothing there can grow business logic.
# A hit is listed as file:line; the test fails when there is any.
#
# usage: test_platform_knows_no_module.sh ROOT MODULE...
set -u

root=${1:?usage: $0 ROOT MODULE...}
shift
if [ $# -eq 0 ]; then
    echo "no module names given" >&2
    exit 2
fi
if [ ! -d "$root/platform" ]; then
    echo "no platform/ under $root" >&2
    exit 2
fi

hits=0
for name in "$@" identity; do
    # -w: whole words only (so "ordering" is no hit for "orders"); -i: any case.
    found=$(cd "$root" && grep -rniw --binary-files=without-match -- "$name" platform/)
    if [ "$name" = identity ]; then
        # The one word that is also SQL: "GENERATED ALWAYS AS IDENTITY" names a column
        # kind, not a module. Only that exact phrase is let through.
        found=$(printf '%s\n' "$found" | grep -v 'GENERATED ALWAYS AS IDENTITY' || true)
    fi
    if [ -n "$found" ]; then
        n=$(printf '%s\n' "$found" | wc -l)
        hits=$((hits + n))
        printf '%s\n' "$found" | sed "s/^/$name: /"
    fi
done

if [ "$hits" -ne 0 ]; then
    echo "FAIL: $hits mention(s) of a module in platform/; use a neutral example (\"widgets\", \"<module>\")" >&2
    exit 1
fi
echo "OK: platform/ names no module"
