#!/usr/bin/env bash
# Install what Cloudlet needs on Debian 12 (as root): Debian packages, then the Python venv.
# Safe to run again: it installs only what is missing. Used by serve.sh, test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(python3 python3-venv python3-dev python3-pip gcc make pkg-config ca-certificates curl
                 openssh-client)  # ssh-keygen writes the SSH CA's revocation list
# the hypervisor and the guest-image tools, without recommends (the same list as src/cloudlet/nodes/prepare.py);
# libvirt-dev must be in before pip builds libvirt-python
NODE_PACKAGES=(qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
               iproute2 iptables dnsmasq-base nftables syslinux syslinux-common mtools dosfstools fdisk cpio mmdebstrap e2fsprogs)
# the WAF edge: nginx with ModSecurity and the OWASP Core Rule Set (cloudlet serve runs its own nginx)
EDGE_PACKAGES=(nginx-light libnginx-mod-http-modsecurity modsecurity-crs)
EXTRAS="${CLOUDLET_SETUP_EXTRAS:-}"   # "dev" for the test tools

# install_missing "what" [apt-get options] -- packages: install those not installed yet
install_missing() {
  local what=$1; shift
  local options=()
  while [ "$1" != "--" ]; do options+=("$1"); shift; done; shift
  local missing=()
  command -v dpkg-query >/dev/null 2>&1 || return 0
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  echo "== installing $what: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${options[@]}" "${missing[@]}" >/dev/null
}

install_missing "Debian packages" -- "${DEBIAN_PACKAGES[@]}"
install_missing "the hypervisor packages" --no-install-recommends -- "${NODE_PACKAGES[@]}"
# Debian starts a packaged nginx on port 80 as it installs it: the edge is Cloudlet's own nginx, so the
# packaged service is kept from starting (policy-rc.d) while the packages go in
held=""
if [ "$(id -u)" = 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && held=1
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
install_missing "the edge (nginx, ModSecurity, the CRS)" --no-install-recommends -- "${EDGE_PACKAGES[@]}"
if [ -n "$held" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
# bench/api_me.py loads the API with wrk: Python load generators saturate before a FastAPI app does;
# pebble is the local ACME server of the edge's tests
case "$EXTRAS" in *dev*) install_missing "the benchmarks' load generator and the test ACME server" -- wrk pebble ;; esac

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
if [ "$(id -u)" = 0 ] && [ -z "${CLOUDLET_SKIP_NODE:-}" ] && command -v libvirtd >/dev/null 2>&1; then
  # libvirtd, the storage pool, the isolated bridge and the KVM/TCG probe; about a second when done before
  .venv/bin/cloudlet node prepare --no-install
fi
echo "== setup done"
