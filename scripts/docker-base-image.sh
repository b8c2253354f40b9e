#!/usr/bin/env bash
# Makes a Docker image without a registry: debootstrap a Debian root filesystem and `docker import` it.
# setup.sh calls it for the docker backend's test image; users make their own images the same way, e.g.
#   IMAGE=my-sklearn:bookworm PACKAGES=python3,python3-sklearn,python3-pandas scripts/docker-base-image.sh
# An image that exists under IMAGE is kept as it is (only checked), so the build (about 2 minutes) happens once.
# Needs debootstrap, a dockerd that answers, root or sudo (debootstrap creates device nodes and chowns).
#
#   IMAGE     tag to create          (default infergate-python:bookworm)
#   SUITE     Debian release         (default bookworm)
#   PACKAGES  comma-separated extras (default python3,python3-sklearn,python3-joblib)
#   MIRROR    Debian mirror          (default http://deb.debian.org/debian)
set -euo pipefail

IMAGE="${IMAGE:-infergate-python:bookworm}"
SUITE="${SUITE:-bookworm}"
PACKAGES="${PACKAGES:-python3,python3-sklearn,python3-joblib}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: building $IMAGE needs root (debootstrap), and sudo is not installed" >&2; exit 1; }
  SUDO="sudo"
fi
# debootstrap lives in /usr/sbin, which a non-root PATH may lack.
DEBOOTSTRAP="$(PATH="$PATH:/usr/sbin:/sbin" command -v debootstrap || true)"
[ -n "$DEBOOTSTRAP" ] || { echo "setup: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "setup: docker does not answer (is dockerd running?)" >&2; exit 1; }

# Not /tmp: it may be a tmpfs (1 GB of RAM) or mounted nodev, where debootstrap cannot create /dev.
work="$(mktemp -d "${TMPDIR_ROOTFS:-/var/tmp}/infergate-rootfs.XXXXXX")"
rootfs="$work/rootfs"
log="$work.log"
cleanup() {
  # debootstrap mounts proc and sys inside the target while it runs; a failed run can leave them mounted,
  # and rm must never walk into the host's /proc or /sys through them.
  for m in proc sys dev/pts; do
    mountpoint -q "$rootfs/$m" 2>/dev/null && $SUDO umount -l "$rootfs/$m" || true
  done
  $SUDO rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "setup: building $IMAGE with debootstrap ($SUITE, minbase + $PACKAGES; about 2 minutes)..."
start=$SECONDS
if ! $SUDO "$DEBOOTSTRAP" --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$log" 2>&1; then
  echo "setup: debootstrap failed; the last lines of its log ($log):" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
# The downloaded .deb files and package lists are only needed to install: leaving them out of the image
# saves a few hundred MB per image and the time to import them.
$SUDO find "$rootfs/var/cache/apt/archives" "$rootfs/var/lib/apt/lists" -maxdepth 1 -type f -delete 2>/dev/null || true

echo "setup: importing $IMAGE into docker..."
$SUDO tar -C "$rootfs" -c . | docker import - "$IMAGE" >/dev/null
rm -f "$log"
echo "setup: built $IMAGE in $((SECONDS - start)) s"
