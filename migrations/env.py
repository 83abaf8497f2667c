"""Alembic environment: runs against the connection Cloudlet hands it, or the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cloudlet.config import Settings
from cloudlet.kit.db import make_engine
from cloudlet.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through a passed-in connection (cloudlet migrate, tests) or the configured database."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(Settings().effective_database_url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `cloudlet migrate`")
run_online()
