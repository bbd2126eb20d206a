#!/usr/bin/env bash
# `cleave new module NAME` makes a module that builds and passes its tests at once.
# Copies the tree (its tracked files and the uncommitted ones, as they are now) to a
# throwaway folder, checks the refusals, scaffolds "widgets" there, configures a build
# with this build's flags (sanitizers, warnings as errors) and builds only the widgets
# targets and cleave-widgets, then runs the widgets tests: local, remote and twins, on
# SQLite and, with the throwaway cluster ctest starts for them, on PostgreSQL.
# Usage: test_scaffold.sh SOURCE_DIR BUILD_DIR CLEAVE_BINARY
set -euo pipefail
src=$1
build=$2
cleave=$3
work=$(mktemp -d /tmp/cleave-test-scaffold-XXXXXX)
# The PostgreSQL cluster runs as its own user (tests/postgres/pg-cluster.sh): it must reach its folder.
chmod 755 "$work"
tree=$work/src
cleanup() {
    # The PostgreSQL cluster of the widgets' _pg tests stops with ctest's cleanup fixture;
    # should ctest itself have been killed, stop it here.
    if [ -f "$work/build/pg-cluster/env" ]; then
        bash "$tree/tests/postgres/pg-cluster.sh" stop "$work/build/pg-cluster" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
started=$(date +%s)

mkdir -p "$tree"
git -C "$src" ls-files -z -co --exclude-standard |
    tar -C "$src" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$tree" -xf -
[ -f "$tree/CMakeLists.txt" ] && [ -d "$tree/app/scaffold/module" ] || fail "the copy of $src is incomplete"

snapshot() { (cd "$tree" && find . -type f -print0 | sort -z | xargs -0 md5sum | md5sum); }
# refuse NAME WHAT [ARGS...]: the command fails, names the problem, and writes nothing.
refuse() {
    local name=$1 what=$2 before
    shift 2
    before=$(snapshot)
    if (cd "$tree" && "$cleave" new module "$name" "$@") >"$work/out.txt" 2>&1; then
        cat "$work/out.txt"
        fail "new module '$name' ($what) was accepted"
    fi
    grep -q "cleave: new module: .*$what" "$work/out.txt" ||
        { cat "$work/out.txt"; fail "new module '$name': the message does not say '$what'"; }
    [ "$(snapshot)" = "$before" ] || fail "new module '$name' was refused but changed the tree"
}
refuse Widgets "\[a-z\]\[a-z0-9_\]\*"
refuse 1widgets "\[a-z\]\[a-z0-9_\]\*"
refuse wid-gets "\[a-z\]\[a-z0-9_\]\*"
refuse "" "\[a-z\]\[a-z0-9_\]\*"
refuse while "C keyword"
refuse static "C keyword"
refuse cl_things "belong to the platform"
refuse shipping "module 'shipping' exists already"
# A module no folder holds yet, but the list names: it exists too.
sed -i 's/^set(CLEAVE_MODULES \(.*\))$/set(CLEAVE_MODULES \1 listed)/' "$tree/CMakeLists.txt"
refuse listed "module 'listed' exists already: .*CMakeLists.txt lists it"
sed -i 's/ listed)$/)/' "$tree/CMakeLists.txt"
# Migrations without a module folder are someone's module all the same.
mkdir -p "$tree/migrations/gadgets"
refuse gadgets "module 'gadgets' has migrations already"
rmdir "$tree/migrations/gadgets"
# No file is ever overwritten: a template whose target exists stops everything before the first file.
mkdir -p "$work/templates/module/modules/@name@"
echo '@name@' >"$work/templates/module/modules/@name@/a.in"
echo 'x' >"$work/templates/module/README.md.in"
refuse gadgets "README.md exists: refusing to overwrite" --templates "$work/templates"
[ ! -e "$tree/modules/gadgets" ] || fail "a refused scaffold left modules/gadgets behind"
refuse gadgets "unknown option --force" --force
[ "$("$cleave" --help | grep -c '^  new module NAME')" = 1 ] || fail "cleave --help does not list new module NAME"

# The real thing.
(cd "$tree" && "$cleave" new module widgets) >"$work/out.txt" 2>&1 ||
    { cat "$work/out.txt"; fail "new module widgets failed"; }
cat "$work/out.txt"
for f in modules/widgets/CMakeLists.txt modules/widgets/include/widgets/widgets.h \
    modules/widgets/api/widgets_api.c modules/widgets/api/api.h modules/widgets/api/rest.c \
    modules/widgets/api/seed.c modules/widgets/src/widgets.c modules/widgets/tests/contract.c \
    modules/widgets/tests/contract.h modules/widgets/tests/contract_local.c \
    modules/widgets/tests/contract_remote.c modules/widgets/tests/contract_twins.c \
    modules/widgets/tests/CMakeLists.txt migrations/widgets/0001_init.sql \
    migrations/widgets/0001_init.postgres.sql; do
    [ -f "$tree/$f" ] || fail "new module widgets made no $f"
done
if grep -rl '@name@\|@NAME@' "$tree/modules/widgets" "$tree/migrations/widgets"; then
    fail "placeholders left in the new module"
fi
grep -q '^set(CLEAVE_MODULES .* widgets)$' "$tree/CMakeLists.txt" ||
    fail "widgets is not in the module list: $(grep 'set(CLEAVE_MODULES' "$tree/CMakeLists.txt")"
refuse widgets "module 'widgets' exists already"
if command -v clang-format >/dev/null; then
    (cd "$tree" && find modules/widgets -name '*.[ch]' -print0 | xargs -0 clang-format --dry-run --Werror) ||
        fail "the new module's sources are not formatted (.clang-format)"
fi

# A build with this build's flags, of the widgets targets only.
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
cmake -S "$tree" -B "$work/build" -DCMAKE_BUILD_TYPE="$(cache CMAKE_BUILD_TYPE)" \
    -DCMAKE_C_COMPILER="$(cache CMAKE_C_COMPILER)" -DCLEAVE_SANITIZE="$(cache CLEAVE_SANITIZE)" \
    -DCLEAVE_TSAN="$(cache CLEAVE_TSAN)" -DCLEAVE_WERROR="$(cache CLEAVE_WERROR)" \
    >"$work/configure.txt" 2>&1 || { cat "$work/configure.txt"; fail "the tree with widgets does not configure"; }
nice cmake --build "$work/build" -j2 --target widgets_contract_local widgets_contract_remote \
    widgets_contract_twins cleave-widgets >"$work/build.txt" 2>&1 ||
    { tail -60 "$work/build.txt"; fail "the widgets module does not build"; }
built=$(date +%s)

tests=$(ctest --test-dir "$work/build" -N -R '^widgets_' -FA '.*' | sed -n 's/^Total Tests: //p')
[ "$tests" = 6 ] || { ctest --test-dir "$work/build" -N -R '^widgets_'; fail "want 6 widgets tests, ctest has $tests"; }
ctest --test-dir "$work/build" -R '^widgets_' --output-on-failure --timeout 300 ||
    fail "the new module's tests fail"
echo "scaffold: build $((built - started)) s, tests $(($(date +%s) - built)) s"
