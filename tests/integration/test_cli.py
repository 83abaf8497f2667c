"""The `cloudlet` command's server-side subcommands."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from cloudlet.cli.main import app


def test_migrate_builds_the_schema_in_the_configured_database(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDLET_DATABASE_URL", database_url)
    monkeypatch.setenv("CLOUDLET_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "database is up to date" in result.output
    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"users", "api_tokens", "projects", "memberships", "invitations", "audit_log", "mail_outbox",
            "alembic_version"} <= tables
    again = CliRunner().invoke(app, ["migrate"])
    assert again.exit_code == 0, again.output
