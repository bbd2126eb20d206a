#!/usr/bin/env bash
# The platform as an installed package (ADR 0019): installs this build into a throwaway
# prefix, builds tests/install/app (one module, one REST route) OUT OF TREE against it
# with find_package(Cleave), checks that the application links neither libpq nor the
# NATS client, serves it on a free loopback port with a throwaway data directory and
# checks its route, its problem+json and the errors for missing optional subsystems;
# then compiles a C file with nothing but pkg-config's flags for cleave-platform.
# Usage: test_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
work=$(mktemp -d /tmp/cleave-test-install-XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" ||
    { cat "$work/install.log"; fail "cmake --install"; }
for f in include/cleave/module.h include/cleave/extension.h include/cleave-host/host.h; do
    [ -f "$prefix/$f" ] || fail "$f is not installed"
done
pcdir=$(dirname "$(find "$prefix" -name cleave-platform.pc)")
[ -f "$pcdir/cleave-platform.pc" ] || fail "cleave-platform.pc is not installed"

# The application, out of tree: nothing of the source tree but its own folder.
cp -r "$src/tests/install/app" "$work/app"
cmake -S "$work/app" -B "$work/app/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Debug >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log"; fail "the application does not configure"; }
cmake --build "$work/app/build" -j2 >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; fail "the application does not build"; }
app=$work/app/build/greeter-app
[ -x "$app" ] || fail "no greeter-app binary"

# Neither libpq nor libnats: not as libraries, not as code (the extensions, nor the shims
# that load the libraries on first call, ADR 0047). The tree's own gateway wires both in,
# so the same checks do see them where they are.
# (Into files first: grep -q would cut the pipe and fail it under pipefail.)
describe() { # describe BINARY OUT: its libraries and defined symbols into OUT
    { ldd "$1" && nm --defined-only "$1"; } >"$2"
}
describe "$build/bin/cleave" "$work/cleave.txt"
describe "$app" "$work/app.txt"
grep -q 'cl_postgres_extension' "$work/cleave.txt" || fail "the check cannot see PostgreSQL"
grep -q 'PQconnectdbParams' "$work/cleave.txt" || fail "the check cannot see libpq's shim"
grep -q 'cl_nats_extension' "$work/cleave.txt" || fail "the check cannot see NATS"
grep -q 'natsConnection_Connect' "$work/cleave.txt" || fail "the check cannot see libnats's shim"
if grep -E 'libpq\.so|libnats|cl_postgres_extension|cl_nats_extension|PQconnectdbParams|natsConnection_Connect' \
    "$work/app.txt"; then
    fail "the application links PostgreSQL or NATS"
fi
grep -q 'cl_extension_register' "$work/app.txt" || fail "the application has no extension table"

# Serve it on a free loopback port (port 0: the kernel picks one; the log says which).
data=$work/data
serve() { # serve LOG [K=V...]: starts the application serving; sets pid and port
    local log=$1
    shift
    # The log exists before the loop reads it: the background job may not have opened it yet,
    # and a sed that cannot read it ends the script (set -e, pipefail).
    : >"$log"
    env CLEAVE_DATA_DIR="$data" CLEAVE_LISTEN=127.0.0.1:0 "$@" "$app" serve >"$log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 1 300); do
        port=$(sed -n 's/.*serving on port \([0-9][0-9]*\).*/\1/p;T;q' "$log")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "the application exited"; }
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$log"; fail "the application did not start serving"; }
}
# Default deny (ADR 0030): an application with no token issuer compiled in and none to reach
# cannot authenticate its modules' RPC callers, so it refuses to serve and says why ...
if CLEAVE_DATA_DIR=$data CLEAVE_LISTEN=127.0.0.1:0 "$app" serve >"$work/noauth.log" 2>&1; then
    fail "serve without any way to authenticate callers succeeded"
fi
grep -q 'cannot authenticate the callers of its modules' "$work/noauth.log" ||
    { cat "$work/noauth.log"; fail "the refusal does not say why"; }
# ... so this test serves it in the development mode (no identity service to point it at).
export CLEAVE_DEV_SERVICE_TOKEN=install-test-dev-token
serve "$work/serve.log"
url=http://127.0.0.1:$port/api/v1/greetings

post() { # post BODY: prints "<status> <content type>" then the body
    curl -s -o "$work/body" -w '%{http_code} %{content_type}\n' -X POST \
        -H 'Content-Type: application/json' --data "$1" "$url"
    cat "$work/body"
}
out=$(post '{"name":"ada"}')
head -1 <<<"$out" | grep -q '^201 application/json' || fail "greeting: $out"
grep -q '"message": *"hello, ada"' <<<"$out" || fail "greeting message: $out"
grep -q '"count": *1' <<<"$out" || fail "first greeting count: $out"
out=$(post '{"name":"grace"}')
grep -q '"count": *2' <<<"$out" || fail "second greeting count (its database): $out"
out=$(post '{"name":""}')
head -1 <<<"$out" | grep -q '^400 application/problem+json' || fail "empty name: $out"
grep -q '"name"' <<<"$out" || fail "the problem does not name the field: $out"
out=$(post '{"name":"ada","age":3}')
head -1 <<<"$out" | grep -q '^400 application/problem+json' || fail "unknown field: $out"
grep -q 'age' <<<"$out" || fail "the problem does not name the unknown field: $out"
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=

# Mutual TLS (ADR 0035): civetweb needs the installed compatibility
# objects, which the application finds through the RUNPATH cleave_add_host gives it.
for lib in ssl crypto; do
    so=$(find "$prefix" -name "libcleave-compat-$lib.so")
    [ -n "$so" ] || fail "libcleave-compat-$lib.so is not installed"
    dynamic=$(readelf -d "$so")
    grep -q "SONAME.*\[lib$lib\.so\]" <<<"$dynamic" || fail "$so's SONAME is not lib$lib.so"
done
pki=$work/pki
mkdir "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=ca \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
for leaf in server client; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$leaf" \
        -keyout "$pki/$leaf.key" -out "$pki/$leaf.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/$leaf.ext"
    openssl x509 -req -in "$pki/$leaf.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 1 -extfile "$pki/$leaf.ext" -out "$pki/$leaf.crt" 2>/dev/null
done
serve "$work/tls.log" CLEAVE_TLS_CERT="$pki/server.crt" CLEAVE_TLS_KEY="$pki/server.key" \
    CLEAVE_TLS_CLIENT_CA="$pki/ca.crt"
tls_url=https://127.0.0.1:$port/api/v1/greetings
out=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$pki/ca.crt" --cert "$pki/client.crt" \
    --key "$pki/client.key" -X POST -H 'Content-Type: application/json' \
    --data '{"name":"tls"}' "$tls_url") || true
[ "$out" = 201 ] || { cat "$work/tls.log"; fail "greeting over mutual TLS: $out"; }
if curl -s -o /dev/null --cacert "$pki/ca.crt" "$tls_url"; then
    fail "a client without a certificate was answered"
fi
kill -0 "$pid" 2>/dev/null || { cat "$work/tls.log"; fail "the application died serving TLS"; }
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=

# Settings that ask for a subsystem this build lacks are errors naming its library.
if CLEAVE_DATA_DIR=$data CLEAVE_LISTEN=127.0.0.1:0 CLEAVE_NATS_URL=nats://127.0.0.1:1 \
    "$app" serve >"$work/nats.log" 2>&1; then
    fail "serve with CLEAVE_NATS_URL but without cleave_nats succeeded"
fi
grep -q 'CLEAVE_NATS_URL asks for nats, but this binary was built without cleave_nats' \
    "$work/nats.log" || { cat "$work/nats.log"; fail "the NATS error does not name cleave_nats"; }
if CLEAVE_DATA_DIR=$data CLEAVE_DATABASE_URL=postgresql://127.0.0.1:1/x "$app" migrate \
    >"$work/pg.log" 2>&1; then
    fail "migrate with CLEAVE_DATABASE_URL but without cleave_postgres succeeded"
fi
grep -q 'CLEAVE_DATABASE_URL asks for postgres, but this binary was built without cleave_postgres' \
    "$work/pg.log" || { cat "$work/pg.log"; fail "the PostgreSQL error does not name cleave_postgres"; }

# pkg-config alone is enough to compile and link against the platform.
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs cleave-platform) ||
    fail "pkg-config does not know cleave-platform"
cc -std=c11 -o "$work/pkgconfig_check" "$src/tests/install/pkgconfig_check.c" $flags ||
    fail "a C file does not build with: $flags"
[ "$("$work/pkgconfig_check" "$work/check.db")" = ok ] || fail "the pkg-config build does not run"
echo "PASS: installed, built out of tree, served (also over mutual TLS), no libpq/libnats, pkg-config works"
