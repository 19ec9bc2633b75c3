#!/usr/bin/env bash
# `make image`: build pksweb's image ($IMAGE, localhost/pksweb:latest) with Debian's podman and write it as an
# OCI archive ($IMAGE_ARCHIVE, var/image/pksweb.oci.tar), on a machine that reaches Debian's mirror and PyPI
# but no image registry.
#
# 1. The base: a minimal Debian bookworm root filesystem with Python 3.11, made by mmdebstrap from the mirror
#    the machine's apt sources name (read here, never written down: the base keeps no apt sources), imported
#    into podman's storage as $IMAGE_BASE. Made once: skipped while that image exists (podman rmi to renew it).
# 2. The image: the Containerfile FROM that base, pip trusting this machine's CA certificates through a build
#    secret ($IMAGE_CA), which stays out of the image. Layers are cached: a change to the source alone
#    rebuilds only the source layer.
# 3. The archive, for `podman load` / `skopeo copy oci-archive:…` into a registry or a cluster's nodes.
#
# Here the runtime is runc (crun fails on this machine's mixed cgroups) and the limits are explicit (podman's
# default open-files limit is above the machine's hard limit). A failed build removes the working containers
# it left behind and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/pksweb:latest}
IMAGE_BASE=${IMAGE_BASE:-localhost/pksweb-base:bookworm}
IMAGE_ARCHIVE=${IMAGE_ARCHIVE:-var/image/pksweb.oci.tar}
IMAGE_CA=${IMAGE_CA:-/etc/ssl/certs/ca-certificates.crt}
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates,tzdata
LIMITS=(--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768)

say() { printf 'make image: %s\n' "$*" >&2; }

# The first URI in the machine's apt sources (deb822 .sources files, then one-line .list files) whose path
# ends with $1 (/debian, /debian-security).
apt_uri() {
    {
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' \t' '\n\n'
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p'
    } | grep -E "$1/?\$" | head -n 1 || true
}

build_base() {
    local mirror security tarball
    mirror=$(apt_uri /debian)
    security=$(apt_uri /debian-security)
    if [ -z "$mirror" ]; then
        say "no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list: cannot make the base"
        return 1
    fi
    local sources=("deb $mirror $SUITE $SUITE-updates main")
    [ -n "$security" ] && sources+=("deb $security $SUITE-security main")
    tarball=var/image/base-$SUITE.tar
    say "making the base $IMAGE_BASE with mmdebstrap ($BASE_PACKAGES)"
    # Merged /usr set up by mmdebstrap's hook (not by the usrmerge package, which brings perl); no manuals,
    # translations or documentation but the copyrights (as Debian's slim images). The customize hook drops the
    # apt sources the mirror's name was written to; mmdebstrap's cleanup drops the package lists.
    if ! mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --customize-hook='rm -f "$1/etc/apt/sources.list"; rm -rf "$1/etc/apt/sources.list.d"/*' \
            "$SUITE" "$tarball" "${sources[@]}"; then
        rm -f "$tarball"
        return 1
    fi
    podman import --quiet "$tarball" "$IMAGE_BASE" >/dev/null
    rm -f "$tarball"
}

# What a failed or interrupted build leaves behind (what was not there before it): the command of a RUN step still
# running in runc, its bundle folder, and buildah's working containers.
before=$(buildah containers --quiet 2>/dev/null | sort || true)
before_runc=$(runc list --quiet 2>/dev/null | sort || true)
cleanup() {
    local status=$?
    [ "$status" -eq 0 ] && return
    rm -f "$IMAGE_ARCHIVE.tmp" var/image/base-*.tar
    local left id bundle
    for id in $(comm -13 <(printf '%s\n' "$before_runc") <(runc list --quiet 2>/dev/null | sort) | grep '^buildah-'); do
        bundle=$(runc state "$id" 2>/dev/null | sed -n 's/.*"bundle": *"\([^"]*\)".*/\1/p')
        say "stopping the build step $id"
        runc delete --force "$id" || true
        case "$bundle" in */buildah*) rm -rf "$bundle" ;; esac
    done
    left=$(comm -13 <(printf '%s\n' "$before") <(buildah containers --quiet 2>/dev/null | sort) || true)
    if [ -n "$left" ]; then
        say "removing the build's working containers: $(echo $left)"
        # shellcheck disable=SC2086
        buildah rm $left >/dev/null || true
    fi
    say "failed (exit $status)"
    exit "$status"
}
trap cleanup EXIT

mkdir -p "$(dirname "$IMAGE_ARCHIVE")" var/image
started=$SECONDS
if podman image exists "$IMAGE_BASE"; then
    say "base $IMAGE_BASE is there (podman rmi $IMAGE_BASE makes it again)"
else
    build_base
    say "base made in $((SECONDS - started)) s"
fi

secret=()
if [ -s "$IMAGE_CA" ]; then secret=(--secret "id=ca,src=$IMAGE_CA"); fi
say "building $IMAGE"
podman build "${LIMITS[@]}" --layers --force-rm --build-arg "BASE=$IMAGE_BASE" "${secret[@]}" \
    --tag "$IMAGE" --file Containerfile .

# The archive is written again only when the image changed (compressing it takes longer than a cached build).
id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [ -s "$IMAGE_ARCHIVE" ] && [ "$(cat "$IMAGE_ARCHIVE.id" 2>/dev/null)" = "$id" ]; then
    say "built in $((SECONDS - started)) s; $IMAGE_ARCHIVE holds it already"
else
    say "built in $((SECONDS - started)) s; writing $IMAGE_ARCHIVE"
    rm -f "$IMAGE_ARCHIVE.id"
    podman save --quiet --format oci-archive --output "$IMAGE_ARCHIVE.tmp" "$IMAGE"
    mv -f "$IMAGE_ARCHIVE.tmp" "$IMAGE_ARCHIVE"
    echo "$id" > "$IMAGE_ARCHIVE.id"
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "$IMAGE: $((size / 1000000)) MB; archive $(du -m "$IMAGE_ARCHIVE" | cut -f1) MiB; $((SECONDS - started)) s"
