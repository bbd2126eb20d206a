#!/bin/bash
# The extracted topology from its images (deploy/container): the host built without
# catalog, inventory and payments, those three as services, PostgreSQL and NATS, and the
# edge proxy (deploy/edge, unchanged) in front, on a podman network of their own. Every
# Cleave container runs as it would on a cluster: --read-only --user 65532, no
# capabilities, migrated by a one-off run of the same image with the admin URL. Every call
# between them carries a service JWT (ADR 0030): a client_credentials client per process,
# registered with identity in the host before anything serves. Then the
# end-to-end smoke over HTTPS and HTTP/2 through the proxy: browse, an order checked out
# to confirmed, its shipment booked. Everything it started is removed, also on failure.
#   container_topology.sh SOURCE_DIR
set -uo pipefail

src=$(cd "$1" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$src/deploy/container/containers.conf}
if ! command -v podman >/dev/null; then
    echo "SKIPPED: podman is not installed (make deps installs it); the images were not tested"
    exit 77
fi
if ! podman run --rm --network none docker.io/library/debian:bookworm-slim true >/dev/null 2>&1 &&
    ! { "$src/deploy/container/base-image.sh" podman >/dev/null &&
        podman run --rm --network none docker.io/library/debian:bookworm-slim true >/dev/null 2>&1; }; then
    echo "SKIPPED: podman cannot run containers here; the images were not tested"
    exit 77
fi

start=$SECONDS
run=cleave-ct-$$
tmp=$(mktemp -d)
chmod 755 "$tmp"
cleanup() {
    podman rm -f -t 2 $(podman ps -aq --filter "label=org.cleave.test=$run") >/dev/null 2>&1
    podman network rm -f "$run" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
# step WHAT: says what the test does next, and when (seconds since it started).
step() { echo "[$((SECONDS - start)) s] $*"; }
# fail WHY: every container's last lines, then WHY last, where a shortened output keeps it.
fail() {
    for c in $(podman ps -aq --filter "label=org.cleave.test=$run"); do
        echo "--- $(podman inspect --format '{{.Name}}' "$c")"
        podman logs --tail 15 "$c" 2>&1
    done
    for f in "$tmp"/status.json "$tmp"/ship.json; do
        [ -s "$f" ] && echo "--- last $(basename "$f"): $(cat "$f")"
    done
    echo "FAIL after $((SECONDS - start)) s: $*"
    exit 1
}
# poll SECONDS DESCRIPTION COMMAND...: runs COMMAND until it succeeds, for at most SECONDS.
poll() {
    local limit=$1 what=$2
    local deadline=$((SECONDS + limit))
    shift 2
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "$what (waited $limit s)"
        sleep 0.2
    done
}

# The images, built once per source change (podman's layer cache makes a rebuild of
# unchanged sources take seconds).
"$src/deploy/container/build-images.sh" --testbed catalog inventory payments || fail "image build"
echo "images ready after $((SECONDS - start)) s"

# Sizes: each module service at most 40 MB (the target, docs/adr/0037-images-and-edge-proxy.md).
for tag in host catalog inventory payments; do
    bytes=$(podman image inspect --format '{{.Size}}' "localhost/cleave:$tag")
    echo "image cleave:$tag: $((bytes / 1000000)).$(((bytes / 100000) % 10)) MB"
    if [ "$tag" != host ] && [ "$bytes" -gt 40000000 ]; then
        fail "cleave:$tag is $bytes bytes, more than 40 MB"
    fi
done

step "PostgreSQL and NATS"
# The network, on a subnet of its own so that every long-running container has a fixed
# address that every container finds in its /etc/hosts. Podman's DNS server (aardvark-dns
# 1.4 here) was seen to leave one container's queries unanswered for most of a minute
# after others came and went on the network; the images look in /etc/hosts first
# (deploy/container/Containerfile), as a pod's hostAliases would have them.
net=""
for _ in 1 2 3 4 5; do
    prefix=10.$((100 + RANDOM % 100)).$((RANDOM % 250))
    if podman network create --subnet "$prefix.0/24" "$run" >/dev/null 2>&1; then
        net=$prefix
        break
    fi
done
[ -n "$net" ] || fail "network: no free subnet after 5 tries"
declare -A addr=([postgres]=$net.200 [nats]=$net.201 [cleave-host]=$net.210
    [cleave-catalog]=$net.211 [cleave-inventory]=$net.212 [cleave-payments]=$net.213
    [edge]=$net.220)
common=(--label "org.cleave.test=$run" --network "$run")
for name in "${!addr[@]}"; do
    common+=(--add-host "$name:${addr[$name]}")
done
# What the Kubernetes pods run with (deploy/k8s): read-only root, uid 65532, no capabilities.
hardened=(--read-only --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges)
env=(-e CLEAVE_LISTEN=0.0.0.0:8080 -e CLEAVE_DATABASE_URL=postgresql://cleave@postgres:5432/shop
    -e CLEAVE_NATS_URL=nats://nats:4222
    -e CLEAVE_CATALOG_URL=http://cleave-catalog:8080 -e CLEAVE_INVENTORY_URL=http://cleave-inventory:8080
    -e CLEAVE_PAYMENTS_URL=http://cleave-payments:8080 -e CLEAVE_HTTP_KEEP_ALIVE_MS=60000
    -e CLEAVE_IDENTITY_ISSUER=https://localhost)
# Identity stays in the host: the services verify their callers' tokens with its keys and
# get their own tokens there, as deploy/k8s/overlays/extracted does.
service_env=(-e CLEAVE_IDENTITY_URL=http://cleave-host:8080)
admin=(-e CLEAVE_DATABASE_ADMIN_URL=postgresql://postgres@postgres:5432/shop)

# PostgreSQL and NATS from the testbed image. Trust authentication is for this throwaway
# network only; a deployment gives every role a password (deploy/README.md).
podman run -d "${common[@]}" --name "$run-postgres" --ip "${addr[postgres]}" --user postgres \
    localhost/cleave-testbed:bookworm bash -c '
        /usr/lib/postgresql/15/bin/initdb -D /tmp/pg -U postgres -A trust >/dev/null &&
        echo "host all all 0.0.0.0/0 trust" >>/tmp/pg/pg_hba.conf &&
        exec /usr/lib/postgresql/15/bin/postgres -D /tmp/pg -c listen_addresses=* -c fsync=off' \
    >/dev/null || fail "postgres container"
podman run -d "${common[@]}" --name "$run-nats" --ip "${addr[nats]}" --user 65532 \
    localhost/cleave-testbed:bookworm nats-server -js -sd /tmp/nats -p 4222 >/dev/null ||
    fail "nats container"
poll 60 "PostgreSQL did not start" podman exec "$run-postgres" \
    /usr/lib/postgresql/15/bin/pg_isready -q -h 127.0.0.1
podman exec "$run-postgres" psql -q -h 127.0.0.1 -U postgres -c 'CREATE DATABASE shop' ||
    fail "create database"

# cleave IMAGE [PODMAN-OPTION...] -- ARGS...: a one-off run of an image, as the migration
# init containers run.
cleave() {
    local image=$1 opts=()
    shift
    while [ "$1" != -- ]; do
        opts+=("$1")
        shift
    done
    shift
    podman run --rm "${common[@]}" "${hardened[@]}" "${env[@]}" "${opts[@]}" \
        "localhost/cleave:$image" "$@"
}
step "migrations"
for image in catalog inventory payments host; do
    cleave "$image" "${admin[@]}" -- migrate >"$tmp/migrate-$image.log" 2>&1 || {
        cat "$tmp/migrate-$image.log"
        fail "migrate with cleave:$image"
    }
done

# A client per process, registered by the host (identity's process) before any serves, as
# deploy/README.md ("Service clients") does on a cluster. Each may get a token for every
# module outside its own process; the secret is printed once and passed only to its process.
step "service clients"
declare -A client_env
for m in catalog inventory payments host; do
    audiences=""
    for other in catalog inventory payments identity orders shipping; do
        case $m:$other in
        host:identity | host:orders | host:shipping | "$m:$m") ;;
        *) audiences+="${audiences:+ }cleave-$other" ;;
        esac
    done
    cleave host -- clients add "cleave-$m" --grant client_credentials --audience "$audiences" \
        >"$tmp/client-$m.log" 2>&1 || {
        cat "$tmp/client-$m.log"
        fail "register the client cleave-$m"
    }
    secret=$(sed -n 's/^client_secret=//p' "$tmp/client-$m.log")
    [ -n "$secret" ] || fail "clients add printed no secret for cleave-$m: $(cat "$tmp/client-$m.log")"
    client_env[$m]="CLEAVE_CLIENT_ID=cleave-$m CLEAVE_CLIENT_SECRET=$secret"
done
rm -f "$tmp"/client-*.log

# process_opts M: the podman options of process M's own settings, in opts.
process_opts() {
    opts=()
    for kv in ${client_env[$1]}; do
        opts+=(-e "$kv")
    done
    [ "$1" = host ] || opts+=("${service_env[@]}")
}

# serving M: process M has its listener open.
serving() { podman logs "$run-$1" 2>&1 | grep -q '"serving on port'; }
# The host first, then the services, each under its Kubernetes name on the network. A
# service verifies every call with the keys it fetches from identity, in the host, and
# after a failed fetch waits 10 s before the next (ADR 0030): the host serves before any
# service does, so that no call, the seeding included, waits out that pause. (The host's
# readiness waits for the services; its listener does not.)
for m in host catalog inventory payments; do
    step "start cleave:$m"
    process_opts "$m"
    podman run -d "${common[@]}" "${hardened[@]}" "${env[@]}" "${opts[@]}" --name "$run-$m" \
        --ip "${addr[cleave-$m]}" "localhost/cleave:$m" >/dev/null || fail "start cleave:$m"
    poll 60 "cleave:$m did not start serving" serving "$m"
done
# Seeding the host calls the services: first the host's /readyz must say every one of them
# is ready (asked from the NATS container, which has bash; the host exposes no port here).
host_ready() {
    podman exec "$run-nats" bash -c 'exec 3<>/dev/tcp/cleave-host/8080 &&
        printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 && head -1 <&3' 2>/dev/null | grep -q ' 200 '
}
step "wait for the host's /readyz"
poll 60 "cleave:host's /readyz did not report every service ready" host_ready
# Each seeds in its own running container, as `kubectl exec` would: the demo's first 24
# products are enough for the smoke (ADR 0051).
for image in catalog inventory payments host; do
    step "seed with cleave:$image"
    podman exec "$run-$image" /usr/local/bin/app seed --limit 24 >"$tmp/seed-$image.log" 2>&1 || {
        cat "$tmp/seed-$image.log"
        fail "seed with cleave:$image"
    }
done

# The edge proxy: the committed configuration, read-only, a throwaway certificate.
step "the edge proxy"
mkdir -p "$tmp/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$tmp/tls/tls.key" -out "$tmp/tls/tls.crt" 2>/dev/null
chmod 644 "$tmp/tls/tls.key"
edge_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
podman run -d "${common[@]}" --name "$run-edge" --ip "${addr[edge]}" --read-only --user 65532:65532 --cap-drop ALL \
    --tmpfs /tmp:rw,mode=1777 -p "127.0.0.1:$edge_port:8443" \
    -v "$src/deploy/edge/nginx.conf:/etc/cleave-edge/nginx.conf:ro" \
    -v "$src/deploy/edge/cleave-edge.conf:/etc/cleave-edge/cleave-edge.conf:ro" \
    -v "$tmp/tls:/etc/cleave-edge/tls:ro" \
    localhost/cleave-testbed:bookworm nginx -p /tmp/ -c /etc/cleave-edge/nginx.conf >/dev/null ||
    fail "edge container"

# Every request from here on goes through the edge: HTTPS, the certificate verified, HTTP/2.
edge=https://localhost:$edge_port
h2() { curl -s --http2 --cacert "$tmp/tls/tls.crt" --resolve "localhost:$edge_port:127.0.0.1" "$@"; }
up() { [ "$(h2 -o /dev/null -w '%{http_code}' "$edge/healthz")" = 200 ]; }
poll 60 "the edge did not answer /healthz" up
# The host's /readyz is not public; a catalog read through the edge shows the whole chain.
served() { [ "$(h2 -o /dev/null -w '%{http_code}' "$edge/api/v1/categories")" = 200 ]; }
poll 60 "the shop did not answer through the edge" served
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

step "the smoke through the edge"
version=$(h2 -o "$tmp/page.json" -w '%{http_version}' "$edge/api/v1/products?limit=5")
[ "$version" = 2 ] || fail "browse answered over HTTP/$version, not HTTP/2"
n=$(json 'len(d["items"])' <"$tmp/page.json") && [ "$n" = 5 ] || fail "browse listed '$n' products: $(cat "$tmp/page.json")"
echo "ok   browse through the edge over HTTP/2: 5 products (catalog service)"

token=$(h2 "$edge/oauth2/token" -u cleave-demo:cleave-demo-secret-for-make-run-only \
    -d grant_type=password -d username=ada -d password=ada-admin-pw | json 'd["access_token"]') ||
    fail "no token for ada"
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
account=ct$$
code=$(h2 -o "$tmp/acc.json" -w '%{http_code}' "${auth[@]}" "$edge/api/v1/accounts" \
    -d "{\"id\":\"$account\",\"owner\":\"Container test\",\"currency\":\"EUR\"}")
[ "$code" = 201 ] || fail "opening account $account answered $code: $(cat "$tmp/acc.json")"
code=$(h2 -o "$tmp/dep.json" -w '%{http_code}' "${auth[@]}" "$edge/api/v1/accounts/$account/deposits" \
    -d '{"amount":{"amount":50000,"currency":"EUR"}}')
case $code in 200 | 201) ;; *) fail "deposit answered $code: $(cat "$tmp/dep.json")" ;; esac
echo "ok   account opened and funded (payments service)"
code=$(h2 -o "$tmp/order.json" -w '%{http_code}' "${auth[@]}" "$edge/api/v1/orders" \
    -d "{\"account_id\":\"$account\",\"lines\":[{\"sku\":\"SKU-000001\",\"quantity\":2}]}")
[ "$code" = 202 ] || fail "the order answered $code: $(cat "$tmp/order.json")"
order=$(json 'd["id"]' <"$tmp/order.json")
confirmed() {
    h2 "${auth[@]}" "$edge/api/v1/orders/$order" >"$tmp/status.json"
    grep -q '"status": *"rejected"' "$tmp/status.json" && fail "order $order rejected: $(cat "$tmp/status.json")"
    grep -q '"status": *"confirmed"' "$tmp/status.json"
}
poll 60 "order $order not confirmed" confirmed
echo "ok   order $order checked out to confirmed (orders in the host, inventory and payments services)"
booked() {
    h2 "${auth[@]}" "$edge/api/v1/shipments?order=order:$order" >"$tmp/ship.json"
    grep -q '"status": *"booked"' "$tmp/ship.json"
}
poll 60 "no booked shipment for $order" booked
echo "ok   shipment booked for $order (shipping, on the order's event over NATS)"

# Each Cleave container ran read-only as 65532 the whole time.
for m in catalog inventory payments host; do
    user=$(podman inspect --format '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}' "$run-$m")
    [ "$user" = "65532:65532 true" ] || fail "cleave:$m ran as '$user'"
    [ "$(podman inspect --format '{{.State.Running}}' "$run-$m")" = true ] || fail "cleave:$m stopped"
done
echo "ok   every cleave container ran --read-only --user 65532"
echo "container topology: all checks passed in $((SECONDS - start)) s"
