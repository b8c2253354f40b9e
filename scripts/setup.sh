#!/usr/bin/env bash
# Installs what infergate needs on a fresh Debian machine: Debian's Python packages for the scikit-learn
# example (python3-sklearn, python3-joblib; run by /usr/bin/python3), python3-pandas for inference_schema's pandas type, python3-venv and python3-pip for the
# environments built from conda files, curl for the walkthrough, and the npm dependencies (npm ci also
# builds dist/ through `prepare`).
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
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

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
