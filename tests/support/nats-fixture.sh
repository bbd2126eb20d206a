#!/bin/bash
# One nats-server with JetStream for a whole test run, shared by the tests whose
# topologies carry events between processes (tests/support/topology.c). Every topology
# holds an account of its own while it runs (tests/support/nats_server.c claims one and
# empties it of the streams an earlier holder left), so their streams never meet.
#   nats-fixture.sh start DIR   start on a free loopback port; writes DIR/port
#   nats-fixture.sh stop DIR    stop it and remove DIR
set -euo pipefail

ACCOUNTS=64
cmd=${1:-}
dir=${2:-}
if [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

# A port nobody listens on. Another process may take it before the server binds it; the
# start is retried on a fresh port in that case.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

write_config() { # port
    echo "listen: 127.0.0.1:$1"
    echo "jetstream { store_dir: \"$dir/store\" }"
    echo "accounts {"
    for i in $(seq 0 $((ACCOUNTS - 1))); do
        echo "  T$i: { jetstream: enabled, users: [ { user: t$i, password: t$i } ] }"
    done
    echo "}"
}

# Stops the server DIR records, if any, and removes DIR.
stop_server() {
    [ -d "$dir" ] || return 0
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 250); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.02
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

case "$cmd" in
start)
    # A start over an earlier one (ctest --repeat runs the setup again) replaces its server.
    stop_server
    mkdir -p "$dir/store" "$dir/claims"
    for _ in 1 2 3; do
        port=$(free_port)
        write_config "$port" >"$dir/nats.conf"
        nats-server -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
        echo $! >"$dir/pid"
        for _ in $(seq 1 250); do
            if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
                echo "$port" >"$dir/port"
                echo "$ACCOUNTS" >"$dir/accounts"
                echo "nats-server on 127.0.0.1:$port with $ACCOUNTS accounts, in $dir"
                exit 0
            fi
            if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
                break
            fi
            sleep 0.02
        done
        kill "$(cat "$dir/pid")" 2>/dev/null || true
    done
    echo "nats-server did not start; see $dir/nats.log" >&2
    cat "$dir/nats.log" >&2 || true
    exit 1
    ;;
stop)
    stop_server
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
