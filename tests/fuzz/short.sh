#!/usr/bin/env bash
# A short real run of every fuzz target (ADR 0026), as a test of `make test`:
#   short.sh <source dir> <build dir> <seconds per target>
# Configures and builds the clang fuzz build in <build dir>, then runs each target for the
# given seconds, two at a time (run.sh), failing on any crash, leak or hang it finds.
set -eu
src=$1
build=$2
seconds=$3
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCLEAVE_FUZZ=ON -DCLEAVE_TESTS=OFF -DCLEAVE_WERROR=ON >/dev/null
cmake --build "$build" -j 2 --target cleave_fuzz_targets >/dev/null
exec bash "$src/tests/fuzz/run.sh" "$build" "$seconds" 2
