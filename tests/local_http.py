"""A plain HTTP server on 127.0.0.1 in a thread of its own: what the fakes of internet services (a model
provider, Telegram's Bot API, Slack's and Discord's webhooks) serve their real protocols on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalHttpServer:
    """A ThreadingHTTPServer on a free loopback port; start() serves, stop() ends it and its request threads."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()  # joins the request threads
        self._thread.join(timeout=5)
