#!/bin/bash
# The NATS fixture leaves no server behind: a second start in the same directory (ctest
# --repeat runs the setup again) replaces the first server, and stop ends the second.
set -euo pipefail

fixture="$(dirname "$0")/nats-fixture.sh"
dir=$(mktemp -d)/nats
trap 'bash "$fixture" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$(dirname "$dir")"' EXIT

bash "$fixture" start "$dir" >/dev/null
first=$(cat "$dir/pid")
bash "$fixture" start "$dir" >/dev/null
second=$(cat "$dir/pid")
bash "$fixture" stop "$dir"
status=0
for pid in "$first" "$second"; do
    # A server that exited but is not yet reaped is a zombie: stopped all the same.
    state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    if [ -n "$state" ] && [ "${state:0:1}" != Z ]; then
        echo "nats-server $pid still runs after the fixture stopped" >&2
        kill "$pid" 2>/dev/null || true
        status=1
    fi
done
[ "$status" = 0 ] && echo "no nats-server left behind"
exit "$status"
