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

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci (builds better-sqlite3 from source: about 80 s)"
  npm ci --no-audit --no-fund
else
  npm run build --silent
fi
