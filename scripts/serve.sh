#!/usr/bin/env bash
# Install everything Cloudlet needs, then run the server with the embedded defaults: SQLite in
# CLOUDLET_DATA_DIR (default /var/lib/cloudlet), this machine as the local libvirt node with the
# small "tiny" guest image in its pool, on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" = 0 ] && [ -z "${CLOUDLET_SKIP_NODE:-}" ] && command -v libvirtd >/dev/null 2>&1; then
  .venv/bin/cloudlet migrate
  .venv/bin/cloudlet images list 2>/dev/null | grep -q '^tiny\b' || .venv/bin/cloudlet images build tiny
fi
exec .venv/bin/cloudlet serve "$@"
