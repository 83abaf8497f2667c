#!/usr/bin/env bash
# Install everything (test tools included) and run the whole test suite, on SQLite and PostgreSQL.
# PostgreSQL and Redis are taken from 127.0.0.1 unless CLOUDLET_TEST_POSTGRES_URL / _REDIS_URL say
# otherwise; set either to "" to skip those tests (outside CI).
set -euo pipefail
cd "$(dirname "$0")/.."
CLOUDLET_SETUP_EXTRAS=dev bash scripts/setup.sh

export CLOUDLET_TEST_POSTGRES_URL="${CLOUDLET_TEST_POSTGRES_URL-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
export CLOUDLET_TEST_REDIS_URL="${CLOUDLET_TEST_REDIS_URL-redis://127.0.0.1:6379/15}"

echo "== lint and types"
.venv/bin/ruff check src tests bench
.venv/bin/mypy src
echo "== tests"
# Most tests wait (on workers, guests, schedules) rather than compute, so several processes share the two
# cores well; each test file runs whole in one process, in order (the e2e modules share one guest per file),
# and the files are handed out in the order tests/conftest.py gives them.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${CLOUDLET_TEST_PROCESSES:-4}" --dist loadfile --no-loadscope-reorder "$@"
