#!/usr/bin/env bash
# Install everything Cloudlet needs, then run the server with the embedded defaults
# (SQLite in CLOUDLET_DATA_DIR, default /var/lib/cloudlet; http://127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/cloudlet serve "$@"
