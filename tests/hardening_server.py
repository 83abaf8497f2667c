"""A real Cloudlet API process for the HTTP-hardening tests: `python -m tests.hardening_server PORT`.

It is `cloudlet api` as the CLI runs it (same logging set-up, same uvicorn options), on the database
CLOUDLET_DATABASE_URL names, plus one route that fails with secrets in its local variables, so that
a test can read what a real unhandled error leaves in the process's log.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import Request

from cloudlet.app import build_runtime, create_app
from cloudlet.cli.main import uvicorn_options
from cloudlet.config import Settings
from cloudlet.kit import logging as cloudlet_logging

CARD_NUMBER = "4111111111111111"  # a value only a traceback with locals could print


def main() -> None:
    """Serve until terminated."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    cloudlet_logging.configure(settings.log_level, json=settings.log_json)
    app = create_app(runtime=build_runtime(settings))

    @app.get("/api/boom", include_in_schema=False)
    def boom(request: Request) -> None:
        card = CARD_NUMBER
        authorization = request.headers.get("authorization")
        smtp = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        held = [card, authorization, smtp, settings]
        # a message far longer than a log line may be
        raise RuntimeError(f"the handler failed holding {len(held)} values: " + "x" * 200_000)

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), **uvicorn_options(settings))


if __name__ == "__main__":
    main()
