"""An answer made when the response is sent, after the request's transaction has committed: what an endpoint
that waits (on an action, on the AI agent's run) returns. FastAPI closes the request's session when the endpoint
returns, before it calls the response; the waiting then holds no transaction (on SQLite, a held write
transaction would stop every other writer, the work waited on included)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class SettledAnswer(Response):
    """An answer made by `make` in a worker thread when the response is sent."""

    def __init__(self, make: Callable[[], Response]) -> None:
        super().__init__()
        self.make = make

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await run_in_threadpool(self.make)  # waits on the database: off the event loop
        await answer(scope, receive, send)
