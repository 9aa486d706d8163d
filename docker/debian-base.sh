#!/usr/bin/env bash
# A Debian + Python 3 base image made without any container registry: debootstrap from a Debian mirror into a
# folder, trim it, and `docker import` it. For building the sandbox image where registries are unreachable:
#   docker/debian-base.sh                      # -> image spine-sandbox-base:bookworm
#   docker build --network host --build-arg BASE_IMAGE=spine-sandbox-base:bookworm -t spine-sandbox .
# The root file system is cached as a tarball (SPINE_SANDBOX_CACHE, default ~/.cache/spine-sandbox-docker), so a
# second run only re-imports it. Needs root and debootstrap (Debian package `debootstrap`).
set -euo pipefail

tag="${1:-spine-sandbox-base:bookworm}"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${SPINE_SANDBOX_CACHE:-$HOME/.cache/spine-sandbox-docker}"
# The host's CA bundle is copied in, so pip in a build trusts what this machine trusts (a corporate TLS proxy).
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
recipe="v2"  # bump when the package list or the trimming below changes, so stale caches are not reused
tarball="$cache/debian-$suite-python3-$recipe.tar"

if docker image inspect "$tag" >/dev/null 2>&1 && [ "${REBUILD:-0}" != 1 ]; then
    echo "base image $tag is already present" >&2
    exit 0
fi

if [ ! -s "$tarball" ] || [ "${REBUILD:-0}" = 1 ]; then
    command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    mkdir -p "$cache"
    root="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    echo "debootstrap $suite from $mirror (a few minutes, once)" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    if [ -s "$ca_bundle" ]; then
        cp "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
    fi
    # What a container never needs: documentation, translations, package lists and caches, logs.
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
           "$root"/usr/share/locale/* "$root"/usr/share/lintian \
           "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
           "$root"/var/log/* "$root"/tmp/*
    chmod 0755 "$root"  # mktemp made it 0700: as the image's /, that would lock every non-root user out
    tar --numeric-owner -C "$root" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
fi

docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    "$tarball" "$tag" >/dev/null
echo "imported $tag from $tarball" >&2
