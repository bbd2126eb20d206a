#!/bin/bash
# Makes the Debian base image the Containerfiles start from (debian:bookworm-slim) when the
# container engine has none: no registry is reachable on the build machines, so it is
# bootstrapped from Debian's repositories (debootstrap, minbase) and imported under the
# name a registry would give it. Where a registry is reachable, the engine pulls the real
# one and this script does nothing.
#
#   deploy/container/base-image.sh [ENGINE]      ENGINE: podman (default) or docker
set -euo pipefail

engine=${1:-podman}
image=docker.io/library/debian:bookworm-slim

if "$engine" image exists "$image" 2>/dev/null ||
    { [ "$engine" = docker ] && docker image inspect "$image" >/dev/null 2>&1; }; then
    exit 0
fi
if "$engine" pull -q "$image" >/dev/null 2>&1; then
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "base-image: no $image and no debootstrap to make one (apt-get install debootstrap)" >&2
    exit 1
}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "base-image: bootstrapping $image from Debian (about 30 s)"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
# What -slim leaves out: documentation and the apt lists (apt-get update fetches them).
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | "$engine" import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "base-image: $image imported"
