"""A cap on request bodies: 413, in the surface's error format, before a large body is read or parsed."""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudlet.kit.ids import is_number
from cloudlet.surfaces.errors import Problem, Renderer


class BodyTooLarge(HTTPException):
    """The body streamed past the cap; an HTTPException so FastAPI passes it on instead of calling it a bad body."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, too_large_message(max_bytes))


def too_large_message(max_bytes: int) -> str:
    """What a 413 says."""
    return f"The request body is larger than the {max_bytes} bytes this server accepts."


class BodySizeLimit:
    """Refuses a request whose body exceeds max_bytes: at once when its Content-Length says so, else as soon
    as the bytes streamed so far (chunked transfer, or a lying length) pass the cap.

    A pure ASGI middleware, so that nothing buffers the body before the count: the app reads through
    the counting receive, and a body over the cap is never read further.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, render: Callable[[str], Renderer], *,
                 larger: tuple[re.Pattern[str], int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render = render
        self.larger = larger  # paths (file uploads) whose bodies may be this large instead

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.max_bytes
        if self.larger is not None and self.larger[0].match(scope["path"]):
            cap = self.larger[1]
        declared = Headers(scope=scope).get("content-length", "")
        if is_number(declared) and int(declared) > cap:
            await self._refuse(scope, send, cap)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLarge(cap)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Raised where no exception handler sees it (a middleware reading the body): answer here.
            if started:
                raise
            await self._refuse(scope, send, cap)

    async def _refuse(self, scope: Scope, send: Send, cap: int) -> None:
        problem = Problem(413, "PAYLOAD_TOO_LARGE", too_large_message(cap))
        response = self.render(scope["path"])(problem)
        # The rest of the body stays unread: the connection cannot carry another request after it.
        response.headers["Connection"] = "close"

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)
