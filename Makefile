# One command per habit. Every target works from a fresh clone (it installs what it needs).
.PHONY: setup serve test lint typecheck bench migration

setup:
	CLOUDLET_SETUP_EXTRAS=dev bash scripts/setup.sh

serve:
	bash scripts/serve.sh

test:
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check src tests bench

typecheck: setup
	.venv/bin/mypy src

bench: setup
	.venv/bin/python -m bench

# make migration m="add the wallet tables"
migration: setup
	@test -n "$(m)" || (echo 'usage: make migration m="what changes"' && exit 2)
	export CLOUDLET_DATABASE_URL=sqlite:///$$(mktemp -d)/gen.db && .venv/bin/alembic upgrade head \
		&& .venv/bin/alembic revision --autogenerate -m "$(m)"
