"""What a log line may hold: no traceback locals, no credentials, no Settings secrets, a bounded length."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from cloudlet.config import Settings, reveal
from cloudlet.kit import logging as cloudlet_logging

PASSWORD = "smtp-password-that-must-not-leak"
SIGNING_KEY = "signing-key-that-must-not-leak-0123456789abcdef"


def _settings() -> Settings:
    return Settings(_env_file=None, secret_key=SIGNING_KEY, smtp_password=PASSWORD,  # type: ignore[call-arg]
                    github_client_secret="github-secret", backup_s3_secret_key="s3-secret",
                    metrics_token="metrics-token", database_url="postgresql+psycopg://app:db-password@db/app")


def _fail(settings: Settings) -> None:
    card = "4111111111111111"  # a local that only a traceback with locals would print
    held = [card, settings]
    raise RuntimeError(f"it failed with {len(held)} values: " + "x" * 100_000)


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
def test_an_exception_is_logged_without_locals_or_secrets_and_bounded(as_json: bool) -> None:
    sink = io.StringIO()
    log = structlog.wrap_logger(structlog.PrintLogger(sink), processors=cloudlet_logging.processors(json=as_json))
    settings = _settings()
    try:
        _fail(settings)
    except RuntimeError:
        log.error("unhandled error", exc_info=True, path="/api/boom", authorization="Bearer cl_secret",
                  access_token="eyJ.secret", note="n" * 50_000)
    line = sink.getvalue()
    for leaked in ("4111111111111111", PASSWORD, SIGNING_KEY, "cl_secret", "eyJ.secret", "db-password"):
        assert leaked not in line
    assert "RuntimeError" in line and "_fail" in line  # the frames and the error are still there
    assert len(line) < 20_000, len(line)
    if as_json:
        event = json.loads(line)
        assert event["authorization"] == event["access_token"] == cloudlet_logging.REDACTED
        assert event["path"] == "/api/boom"
        assert all("locals" not in frame for frame in event["exception"][0]["frames"])


def test_the_standard_library_records_are_bounded_and_plain() -> None:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(cloudlet_logging.BoundedFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("tests.bounded")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        _fail(_settings())
    except RuntimeError:
        logger.exception("Exception in ASGI application %s", "y" * 50_000)
    line = sink.getvalue()
    assert "4111111111111111" not in line and "RuntimeError" in line
    assert len(line) < 20_000, len(line)


def test_a_telegram_bot_token_in_a_logged_url_is_hidden() -> None:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(cloudlet_logging.BoundedFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("tests.httpx")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # what httpx logs of every request
    logger.info('HTTP Request: %s %s "%s %d %s"', "POST",
                "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getUpdates", "HTTP/1.1",
                200, "OK")
    line = sink.getvalue()
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in line
    assert f"https://api.telegram.org/bot{cloudlet_logging.REDACTED}/getUpdates" in line


def test_settings_show_no_secret_in_their_repr_and_give_them_only_on_purpose() -> None:
    settings = _settings()
    shown = f"{settings!r} {settings}"
    for secret in (SIGNING_KEY, PASSWORD, "github-secret", "s3-secret", "metrics-token", "db-password"):
        assert secret not in shown
    assert settings.jwt_secret == SIGNING_KEY and reveal(settings.smtp_password) == PASSWORD
    assert reveal(Settings(_env_file=None).metrics_token) is None  # type: ignore[call-arg]
