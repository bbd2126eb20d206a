#!/usr/bin/env bash
# Modules declare their dependencies once (cleave_module(<m> DEPENDS ...)); the start
# order is sorted from them, and an unknown dependency or a cycle stops the configure
# step with an error naming it. Configures tiny projects that use cmake/CleaveModule.cmake.
# Usage: test_module_order.sh SOURCE_DIR
set -euo pipefail
src=$1
work=$(mktemp -d /tmp/cleave-test-module-order-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# project MODULES_LINE DECLARATIONS...: a project whose modules are declared as given
# ("a DEPENDS b"), listed in the order MODULES_LINE gives.
project() {
    rm -rf "$work/p"
    mkdir -p "$work/p"
    {
        echo 'cmake_minimum_required(VERSION 3.25)'
        echo 'project(order LANGUAGES C)'
        echo 'foreach(t core http db bus rpc)'
        echo '  add_library(Cleave::${t} INTERFACE IMPORTED)'
        echo 'endforeach()'
        echo "include($src/cmake/CleaveModule.cmake)"
        echo "set(MODULES $1)"
        shift
        for decl in "$@"; do
            m=${decl%% *}
            mkdir -p "$work/p/$m/src"
            echo 'int unused;' >"$work/p/$m/src/$m.c"
            echo "cleave_module($decl)" >"$work/p/$m/CMakeLists.txt"
            echo "add_subdirectory($m)"
        done
        echo 'cleave_sort_modules(MODULES)'
        echo 'message(STATUS "order: ${MODULES}")'
    } >"$work/p/CMakeLists.txt"
    cmake -S "$work/p" -B "$work/p/build" >"$work/out.txt" 2>&1
}

project "shipping orders payments catalog" "orders DEPENDS catalog payments" "catalog" \
    "payments DEPENDS catalog" "shipping" ||
    { cat "$work/out.txt"; fail "a valid declaration does not configure"; }
grep -q 'order: shipping;catalog;payments;orders$' "$work/out.txt" ||
    { cat "$work/out.txt"; fail "modules do not start after their dependencies"; }
grep -q '"catalog", "payments", NULL' "$work/p/build/orders/orders_depends.c" ||
    fail "the descriptor's depends list is not generated from DEPENDS"

if project "orders catalog" "orders DEPENDS catalog warehouse" "catalog"; then
    fail "an unknown dependency was accepted"
fi
grep -q "cleave_module(orders): DEPENDS names 'warehouse', which is not a module" \
    "$work/out.txt" || { cat "$work/out.txt"; fail "the error does not name the dependency"; }

if project "a b c" "a DEPENDS c" "b DEPENDS a" "c DEPENDS b"; then
    fail "a dependency cycle was accepted"
fi
grep -q "modules depend on each other in a cycle: a -> c -> b -> a" "$work/out.txt" ||
    { cat "$work/out.txt"; fail "the error does not name the cycle"; }

if project "a b" "a"; then
    fail "a listed module that is never declared was accepted"
fi
grep -q "module 'b' is listed but never declared with cleave_module(b)" "$work/out.txt" ||
    { cat "$work/out.txt"; fail "the error does not name the undeclared module"; }
echo "PASS: start order sorted from DEPENDS; unknown dependencies and cycles are named"
