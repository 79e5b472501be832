#!/usr/bin/env bash
# Makes a base image for rock_vec's worker containers without any registry:
# a minimal Debian bookworm (Python 3.11) from Debian's package mirror with
# debootstrap, imported into the local Docker engine. Needs root, debootstrap
# and a running engine (DOCKER_HOST if not the default socket); about a minute.
#
#   launcher/make-base-image.sh [TAG]      # default TAG: rock-vec-base:bookworm
set -euo pipefail
tag="${1:-rock-vec-base:bookworm}"
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" >/dev/null
tar -C "$rootfs" -c . | docker import - "$tag" >/dev/null
echo "$tag"
