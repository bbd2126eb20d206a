#!/bin/bash
# Builds the images of one deployment (make image MODULES="..."):
#   cleave:monolith        when MODULES is empty: every module in one process
#   cleave:host            the host built without MODULES (EXTRACT="a;b")
#   cleave:<m>             the cleave-<m> service, for every m in MODULES
# with podman, or docker where there is no podman. The Debian base image is made locally
# when the engine has none (base-image.sh). JOBS bounds the compiler inside the build.
#
#   deploy/container/build-images.sh [--testbed] [MODULE...]
# --testbed also builds cleave-testbed:bookworm (PostgreSQL, NATS and nginx from Debian), the
# image the container topology test runs those parts from.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
engine=${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
jobs=${JOBS:-2}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/container/containers.conf}
testbed=0
if [ "${1:-}" = --testbed ]; then
    testbed=1
    shift
fi
modules=("$@")

"$root/deploy/container/base-image.sh" "$engine"

build() { # TAG BUILD-ARG...
    local tag=$1 start
    shift
    start=$(date +%s)
    nice -n 10 "$engine" build -q -f "$root/deploy/container/Containerfile" \
        --build-arg JOBS="$jobs" "$@" -t "localhost/cleave:$tag" "$root" >/dev/null
    echo "image cleave:$tag built in $(($(date +%s) - start)) s," \
        "$("$engine" image inspect --format '{{.Size}}' "localhost/cleave:$tag") bytes"
}

if [ ${#modules[@]} -eq 0 ]; then
    build monolith
else
    extract=$(
        IFS=';'
        echo "${modules[*]}"
    )
    build host --build-arg EXTRACT="$extract" --label org.cleave.extract="$extract"
    for m in "${modules[@]}"; do
        build "$m" --build-arg MODULE="$m"
    done
fi
if [ "$testbed" = 1 ]; then
    nice -n 10 "$engine" build -q -f "$root/deploy/container/Containerfile.testbed" \
        -t localhost/cleave-testbed:bookworm "$root/deploy" >/dev/null
    echo "image cleave-testbed:bookworm built"
fi
