#!/usr/bin/env bash
# Install what Cloudlet needs on Debian 12 (as root): Debian packages, then the Python venv.
# Safe to run again: it installs only what is missing. Used by serve.sh, test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(python3 python3-venv python3-dev python3-pip gcc make pkg-config ca-certificates curl)
EXTRAS="${CLOUDLET_SETUP_EXTRAS:-}"   # "dev" for the test tools

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${CLOUDLET_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating the virtual environment (.venv)"
  "$PYTHON" -m venv .venv
fi
spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
stamp=".venv/.cloudlet-installed-$(sha256sum pyproject.toml | cut -c1-16)-${EXTRAS:-base}"
if [ ! -f "$stamp" ]; then
  echo "== installing Cloudlet into .venv ($spec)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e "$spec"
  rm -f .venv/.cloudlet-installed-*
  touch "$stamp"
fi
echo "== setup done"
