#!/bin/bash
# The edge proxy (deploy/edge, nginx) on loopback with a throwaway self-signed certificate,
# in front of a real cleave monolith on SQLite: browse over HTTPS and HTTP/2, a gzip answer
# that decodes to the same JSON, a body over the limit refused with problem+json before it
# reaches the host, non-public paths hidden, and the upstream connection kept alive.
#   edge_smoke.sh SOURCE_DIR BIN_DIR
set -uo pipefail

src=$1
bin=$2
for tool in nginx openssl curl python3; do
    if ! command -v $tool >/dev/null; then
        echo "SKIPPED: $tool is not installed (make deps installs nginx-light)"
        exit 77
    fi
done

tmp=$(mktemp -d)
# nginx started as root runs its workers as nobody: they buffer large bodies in the edge
# folder, so they must be able to reach it.
chmod 711 "$tmp"
host_pid=""
edge_pid=""
cleanup() {
    [ -n "$edge_pid" ] && kill "$edge_pid" 2>/dev/null && wait "$edge_pid" 2>/dev/null
    [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        echo "ok   $what"
    else
        echo "FAIL $what"
        failures=$((failures + 1))
    fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_for URL CURL-OPTION...: polls until it answers 200, for at most 20 s.
wait_for() {
    local url=$1 deadline=$((SECONDS + 20))
    shift
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url")" = 200 ]; do
        if [ $SECONDS -ge $deadline ]; then
            echo "FAIL $url did not answer 200 within 20 s"
            return 1
        fi
        sleep 0.1
    done
}

host_port=$(free_port)
edge_port=$(free_port)

# The host: the monolith, migrated and seeded, with an idle limit above the edge's.
export CLEAVE_DATA_DIR=$tmp/data CLEAVE_LISTEN=127.0.0.1:$host_port CLEAVE_HTTP_KEEP_ALIVE_MS=60000
"$bin/cleave" migrate >"$tmp/host.log" 2>&1 && "$bin/cleave" seed >>"$tmp/host.log" 2>&1 || {
    cat "$tmp/host.log"
    exit 1
}
"$bin/cleave" serve >>"$tmp/host.log" 2>&1 &
host_pid=$!
wait_for "http://127.0.0.1:$host_port/healthz" || exit 1

# The edge: the committed configuration, pointed at this host and port.
mkdir -p "$tmp/edge/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$tmp/edge/tls/tls.key" -out "$tmp/edge/tls/tls.crt" 2>/dev/null
cp "$src/deploy/edge/nginx.conf" "$tmp/edge/"
sed -e "s/server cleave-host:8080;/server 127.0.0.1:$host_port;/" \
    -e "s/listen 8443 ssl http2;/listen 127.0.0.1:$edge_port ssl http2;/" \
    "$src/deploy/edge/cleave-edge.conf" >"$tmp/edge/cleave-edge.conf"
grep -q "127.0.0.1:$host_port" "$tmp/edge/cleave-edge.conf" &&
    grep -q "127.0.0.1:$edge_port" "$tmp/edge/cleave-edge.conf" || {
    echo "FAIL the edge configuration no longer has the upstream or listen line this test points"
    exit 1
}
nginx -t -q -p "$tmp/edge/" -c "$tmp/edge/nginx.conf" || exit 1
nginx -p "$tmp/edge/" -c "$tmp/edge/nginx.conf" >"$tmp/edge.log" 2>&1 &
edge_pid=$!
edge=https://127.0.0.1:$edge_port
tls=(--cacert "$tmp/edge/tls/tls.crt" --resolve "localhost:$edge_port:127.0.0.1")
edge=https://localhost:$edge_port
wait_for "$edge/healthz" "${tls[@]}" || exit 1

# Browse over HTTP/2, the certificate verified.
version=$(curl -s "${tls[@]}" --http2 -o "$tmp/page.json" -w '%{http_version}' "$edge/api/v1/products?limit=5")
check "browse answers over HTTP/2 (got HTTP/$version)" test "$version" = 2
check "browse lists 5 products" python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); assert len(d["items"])==5, d' "$tmp/page.json"

# gzip: the compressed answer decodes to the same JSON as the plain one.
curl -s "${tls[@]}" --http2 -H 'Accept-Encoding: gzip' -D "$tmp/gz.headers" -o "$tmp/page.gz" \
    "$edge/api/v1/products?limit=50"
curl -s "${tls[@]}" --http2 -o "$tmp/page50.json" "$edge/api/v1/products?limit=50"
check "JSON is gzipped when asked" grep -qi '^content-encoding: gzip' "$tmp/gz.headers"
check "the gzip answer decodes to the same 50 products" python3 -c '
import gzip,json,sys
a=json.loads(gzip.decompress(open(sys.argv[1],"rb").read())); b=json.load(open(sys.argv[2]))
assert len(a["items"])==50 and a["items"]==b["items"], (len(a["items"]),)' "$tmp/page.gz" "$tmp/page50.json"

# A body over 1 MiB is refused at the edge with problem+json; one under it reaches the host
# (which wants a token: 401 from the host, not from the edge).
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' 'a' >"$tmp/big"
code=$(curl -s "${tls[@]}" --http2 -o "$tmp/big.out" -D "$tmp/big.headers" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary @"$tmp/big" "$edge/api/v1/products")
check "a 1 MiB + 1 byte body is refused with 413 (got $code)" test "$code" = 413
check "the refusal is problem+json" grep -qi '^content-type: application/problem+json' "$tmp/big.headers"
head -c $((512 * 1024)) "$tmp/big" >"$tmp/half"
code=$(curl -s "${tls[@]}" --http2 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$tmp/half" "$edge/api/v1/products")
check "a 512 KiB body reaches the host, which asks for a token (got $code)" test "$code" = 401

# A token through the edge (a form body), then a staff read with it.
token=$(curl -s "${tls[@]}" --http2 "$edge/oauth2/token" -u cleave-demo:cleave-demo-secret-for-make-run-only \
    -d grant_type=password -d username=sam -d password=sam-staff-pw |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
code=$(curl -s "${tls[@]}" --http2 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    "$edge/api/v1/inventory/SKU-000001")
check "a token from /oauth2/token through the edge reads stock (got $code)" test "$code" = 200

# Not public: what the host serves to the cluster only.
for path in /metrics /readyz /rpc/v1/catalog/get_product; do
    code=$(curl -s "${tls[@]}" --http2 -o /dev/null -w '%{http_code}' "$edge$path")
    check "$path is not served at the edge (got $code)" test "$code" = 404
done
check "the host itself still serves /readyz" wait_for "http://127.0.0.1:$host_port/readyz"

# Kept alive towards the host: after 20 requests, the edge still holds an established
# connection to it, and fewer than one per request.
for _ in $(seq 20); do
    curl -s "${tls[@]}" --http2 -o /dev/null "$edge/api/v1/categories"
done
conns=$(ss -Htn state established "( dport = :$host_port )" | wc -l)
check "the upstream connections are kept alive and reused ($conns open after 20 requests)" \
    test "$conns" -ge 1 -a "$conns" -lt 20

if [ $failures -gt 0 ]; then
    echo "--- edge log"
    tail -20 "$tmp/edge.log"
    echo "--- host log"
    tail -20 "$tmp/host.log"
    exit 1
fi
echo "edge smoke: all checks passed"
