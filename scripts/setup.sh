#!/usr/bin/env bash
# Installs what infergate needs on a fresh Debian machine: Debian's Python packages for the scikit-learn
# example (python3-sklearn, python3-joblib; run by /usr/bin/python3), python3-pandas for inference_schema's pandas type, python3-venv and python3-pip for the
# environments built from conda files, curl for the walkthrough, and the npm dependencies (npm ci also
# builds dist/ through `prepare`).
# For the docker backend: docker.io, debootstrap and docker-registry (a loopback registry for the
# Kubernetes backend's image push tests), a running dockerd (started here when none answers;
# scripts/stop-docker.sh stops it again) and the base image infergate-python:bookworm (DEFAULT_DOCKER_IMAGE)
# (scripts/docker-base-image.sh, built once). Docker is optional: when it cannot be installed or started,
# setup says why and goes on (the docker backend's tests then skip), unless INFERGATE_REQUIRE_DOCKER=1.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
/usr/bin/python3 -c 'import sklearn, joblib' >/dev/null 2>&1 || need_apt+=(python3-sklearn python3-joblib)
# inference_schema's pandas parameter type (src/runtime/python/compat) is tested with real DataFrames.
/usr/bin/python3 -c 'import pandas' >/dev/null 2>&1 || need_apt+=(python3-pandas)
# Azure's binary-payload example (test/fixtures/py-binary-payload) uses Pillow.
/usr/bin/python3 -c 'import PIL' >/dev/null 2>&1 || need_apt+=(python3-pil)
# Environments from conda files are built as virtual environments (src/backend/process/env-builder.ts):
# `python3 -m venv` needs Debian's python3-venv, and pip installs into them with python3-pip's pip.
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The studio's browser tests (test/browser) drive Debian's chromium through playwright-core: no browser download.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# ---- Docker (src/backend/docker) ------------------------------------------------------------------------
# Written by setup only when it starts dockerd itself, so stop-docker.sh never stops a daemon someone else
# runs. Keep in step with scripts/stop-docker.sh.
DOCKERD_PIDFILE="${INFERGATE_DOCKERD_PIDFILE:-/run/infergate-dockerd.pid}"
DOCKERD_LOG="${INFERGATE_DOCKERD_LOG:-/var/log/infergate-dockerd.log}"
DOCKERD_WAIT_S=30

# Docker is optional for users (the process backend needs none of it), required in CI.
docker_unavailable() {
  if [ "${INFERGATE_REQUIRE_DOCKER:-0}" = 1 ]; then
    echo "setup: $1 (INFERGATE_REQUIRE_DOCKER=1, so this is an error)" >&2
    exit 1
  fi
  echo "setup: $1; going on without docker (the docker backend's tests will skip)" >&2
}

docker_answers() { docker info >/dev/null 2>&1; }
# kill -0 also succeeds on a zombie, which a dockerd that died stays when whatever adopted it does not reap.
running() { local state; state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"; [ -n "$state" ] && [ "$state" != Z ]; }

# Starts dockerd in the background, detached from this shell's session so that it outlives setup, and waits
# (bounded) until it answers. Prints why and returns 1 when it does not come up.
start_dockerd() {
  local dockerd
  dockerd="$(PATH="$PATH:/usr/sbin:/sbin" command -v dockerd)"
  echo "setup: dockerd is not running; starting it (log: $DOCKERD_LOG)"
  # Run without job control, the background child is no process group leader, so setsid calls setsid()
  # itself instead of forking: $! is dockerd's own pid.
  $SUDO sh -c 'setsid "$1" </dev/null >>"$2" 2>&1 & echo $! >"$3"' sh "$dockerd" "$DOCKERD_LOG" "$DOCKERD_PIDFILE"
  local pid deadline=$((SECONDS + DOCKERD_WAIT_S))
  pid="$(cat "$DOCKERD_PIDFILE")"
  until docker_answers; do
    if ! running "$pid"; then
      echo "setup: dockerd exited while starting; the last lines of $DOCKERD_LOG:" >&2
      $SUDO tail -n 15 "$DOCKERD_LOG" >&2 || true
      $SUDO rm -f "$DOCKERD_PIDFILE"
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "setup: dockerd did not answer within ${DOCKERD_WAIT_S} s; stopping it. The last lines of $DOCKERD_LOG:" >&2
      $SUDO tail -n 15 "$DOCKERD_LOG" >&2 || true
      $SUDO kill -TERM "$pid" 2>/dev/null || true
      $SUDO rm -f "$DOCKERD_PIDFILE"
      return 1
    fi
    sleep 0.5
  done
  echo "setup: dockerd answers (pid $pid; scripts/stop-docker.sh stops it)"
}

setup_docker() {
  local need=()
  # A docker CLI that answers is enough (a daemon elsewhere, DOCKER_HOST): dockerd is only needed locally.
  if ! docker_answers && ! { command -v docker && PATH="$PATH:/usr/sbin:/sbin" command -v dockerd; } >/dev/null 2>&1; then
    need+=(docker.io)
  fi
  PATH="$PATH:/usr/sbin:/sbin" command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  # A registry on loopback: test/kubernetes/registry.test.ts pushes environment images to it.
  [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages for the docker backend: ${need[*]}"
    if [ $apt_updated = 0 ]; then
      $SUDO apt-get update -qq || { docker_unavailable "apt-get update failed"; return; }
      apt_updated=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; then
      docker_unavailable "could not install ${need[*]} with apt-get"
      return
    fi
  fi
  if ! docker_answers; then
    # docker.io's own start script needs an init system; without one (containers, CI) nothing started it.
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v dockerd >/dev/null 2>&1; then
      docker_unavailable "docker does not answer and dockerd is not installed here"
      return
    fi
    start_dockerd || { docker_unavailable "could not start dockerd"; return; }
  fi
  bash scripts/docker-base-image.sh || docker_unavailable "could not build the base image infergate-python:bookworm (DEFAULT_DOCKER_IMAGE)"
}
setup_docker

# Instance isolation (docs/security.md "Instance isolation"): a server running as root runs every instance
# under a uid of its own from infergate-instance's subordinate range, with that user's group. The server
# creates both at start when missing; setup does it here so they exist before the first start.
if [ "$(id -u)" -eq 0 ] && command -v useradd >/dev/null 2>&1; then
  if ! getent passwd infergate-instance >/dev/null; then
    echo "setup: creating the system user infergate-instance (instances of a root server run under it)"
    useradd --system --no-create-home --shell /usr/sbin/nologin --user-group infergate-instance
  fi
  # 65536 uids from 0x70000000, a range systemd's allocation plan leaves unused; recorded in /etc/subuid so
  # that other range allocators (podman, newuidmap) leave it alone.
  if ! grep -q '^infergate-instance:' /etc/subuid 2>/dev/null; then
    usermod --add-subuids 1879048192-1879113727 infergate-instance 2>/dev/null || echo "setup: could not record the uid range in /etc/subuid (the server uses it anyway)"
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci (builds better-sqlite3 from source: about 80 s)"
  npm ci --no-audit --no-fund
else
  npm run build --silent
fi
