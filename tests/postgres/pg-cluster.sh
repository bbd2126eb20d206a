#!/bin/bash
# A throwaway PostgreSQL primary with a streaming replica, for tests and benchmarks.
#
#   pg-cluster.sh start DIR [--no-replica] [--ram]
#                                            start on free loopback ports; writes DIR/env
#   pg-cluster.sh stop DIR                   stop both servers and remove DIR
#   pg-cluster.sh stop-primary DIR           stop the primary only (fault injection)
#   pg-cluster.sh start-primary DIR          start it again on the same port
#
# DIR/env holds shell-style KEY=value lines the tests read:
#   CLEAVE_TEST_PG_PRIMARY  admin URL of the primary (superuser postgres, database postgres)
#   CLEAVE_TEST_PG_REPLICA  the same for the replica (empty with --no-replica)
#   CLEAVE_TEST_PG_DIR      DIR
# Run as root the servers run as the postgres user (initdb refuses root); run as anyone
# else they run as that user. Every wait polls a real condition with a deadline.
#
# --ram keeps the servers' files in memory: DIR is then a link to a folder of /dev/shm
# (a tmpfs), when it has room. The test run creates and drops a database per test case,
# some 300 files each on the primary and again on the replica; on ext4 that file churn
# cost the servers over three times the CPU it costs there (docs/adr/0011-postgresql.md).
set -euo pipefail

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|stop-primary|start-primary DIR" >&2; exit 2; }
[ -x "$PG_BIN/postgres" ] || { echo "PostgreSQL server not found (PG_BIN=$PG_BIN)" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/bash -c "$*"
    else
        bash -c "$*"
    fi
}

# A port nobody listens on. Another process may take it before the server binds it; the
# caller retries the start on a fresh port in that case.
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

# The settings of both servers; the replica must allow at least as many connections.
server_opts() {
    echo "-p $1 -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" \
         "-c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB" \
         "-c wal_level=replica -c max_wal_senders=5 -c hot_standby=on" \
         "-c hot_standby_feedback=on -c wal_receiver_status_interval=1s" \
         "-c max_wal_size=256MB"
}

# A folder of /dev/shm for the servers' files, or nothing when it is not a writable tmpfs
# with 4 GiB free (the databases, and the WAL that max_wal_size bounds, take far less).
ram_dir() {
    [ -d /dev/shm ] && [ -w /dev/shm ] || return 0
    [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] || return 0
    [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -ge 4194304 ] || return 0
    mktemp -d /dev/shm/cleave-pg-XXXXXX
}

# Removes DIR, and the folder it links to when --ram made it a link.
remove_dir() {
    if [ -L "$dir" ]; then
        rm -rf "$(readlink "$dir")"
    fi
    rm -rf "$dir"
}

start_server() { # data dir, port, log
    as_pg "$PG_BIN/pg_ctl -D '$1' -l '$3' -o '$(server_opts "$2")' -w -t 30 start" >/dev/null
}

psql_at() { # port, sql
    as_pg "$PG_BIN/psql -X -A -t -h 127.0.0.1 -p $1 -U postgres -d postgres -c \"$2\""
}

case "$cmd" in
start)
    replica=1
    ram=0
    for opt in "${@:3}"; do
        case "$opt" in
        --no-replica) replica=0 ;;
        --ram) ram=1 ;;
        *) echo "pg-cluster.sh: unknown option $opt" >&2; exit 2 ;;
        esac
    done
    remove_dir
    mkdir -p "$(dirname "$dir")"
    target=$dir
    if [ "$ram" = 1 ]; then
        target=$(ram_dir)
        if [ -n "$target" ]; then
            ln -s "$target" "$dir"
        else
            echo "pg-cluster.sh: /dev/shm is not a tmpfs with room; the cluster stays on disk" >&2
            target=$dir
        fi
    fi
    if [ "$(id -u)" = 0 ]; then
        install -d -o postgres -g postgres -m 0700 "$target"
    else
        install -d -m 0700 "$target"
    fi
    as_pg "$PG_BIN/initdb -D '$dir/primary' -U postgres -A trust -E UTF8 --locale=C --no-sync" \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    for attempt in 1 2 3; do
        pport=$(free_port)
        if start_server "$dir/primary" "$pport" "$dir/primary.log"; then
            break
        fi
        [ "$attempt" = 3 ] && { cat "$dir/primary.log" >&2; exit 1; }
    done
    echo "$pport" >"$dir/primary.port"
    rport=""
    if [ "$replica" = 1 ]; then
        # A replication slot of its own (-C -S): the primary keeps every WAL segment until
        # the replica has it. Without one, the checkpoints of the run's many CREATE DATABASE
        # recycled segments a briefly disconnected replica still needed, and it never caught
        # up again ("requested WAL segment ... has already been removed").
        as_pg "$PG_BIN/pg_basebackup -h 127.0.0.1 -p $pport -U postgres -D '$dir/replica' -R -X stream -c fast -C -S cleave_test_replica" \
            >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
        for attempt in 1 2 3; do
            rport=$(free_port)
            if start_server "$dir/replica" "$rport" "$dir/replica.log"; then
                break
            fi
            [ "$attempt" = 3 ] && { cat "$dir/replica.log" >&2; exit 1; }
        done
        echo "$rport" >"$dir/replica.port"
        # Streaming, not merely started: the primary sees its WAL sender in that state.
        deadline=$((SECONDS + 30))
        until [ "$(psql_at "$pport" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ]; do
            [ $SECONDS -lt $deadline ] || { echo "replica did not start streaming" >&2; cat "$dir/replica.log" >&2; exit 1; }
            sleep 0.1
        done
    fi
    {
        echo "CLEAVE_TEST_PG_PRIMARY=postgresql://postgres@127.0.0.1:$pport/postgres"
        if [ -n "$rport" ]; then
            echo "CLEAVE_TEST_PG_REPLICA=postgresql://postgres@127.0.0.1:$rport/postgres"
        else
            echo "CLEAVE_TEST_PG_REPLICA="
        fi
        echo "CLEAVE_TEST_PG_DIR=$dir"
    } >"$dir/env.tmp"
    chmod 0644 "$dir/env.tmp"
    chmod 0755 "$target"
    mv "$dir/env.tmp" "$dir/env"
    echo "PostgreSQL primary on 127.0.0.1:$pport${rport:+, replica on 127.0.0.1:$rport}, in $dir"
    ;;
stop)
    [ -d "$dir" ] || { remove_dir; exit 0; }
    for node in replica primary; do
        if [ -f "$dir/$node/postmaster.pid" ]; then
            as_pg "$PG_BIN/pg_ctl -D '$dir/$node' -m immediate -w -t 30 stop" >/dev/null 2>&1 || true
        fi
    done
    remove_dir
    ;;
stop-primary)
    as_pg "$PG_BIN/pg_ctl -D '$dir/primary' -m fast -w -t 30 stop" >/dev/null
    ;;
start-primary)
    start_server "$dir/primary" "$(cat "$dir/primary.port")" "$dir/primary.log"
    ;;
*)
    echo "usage: $0 start|stop|stop-primary|start-primary DIR" >&2
    exit 2
    ;;
esac
