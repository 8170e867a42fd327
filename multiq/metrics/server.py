"""``/metrics`` over HTTP: a standard-library threading server, one scrape per request."""
from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Type

from multiq.metrics.exposition import CONTENT_TYPE

logger = logging.getLogger("multiq.metrics")


def handler(scrape: Callable[[], str]) -> Type[BaseHTTPRequestHandler]:
    """A request handler that answers ``GET /metrics`` with ``scrape()``."""

    class MetricsHandler(BaseHTTPRequestHandler):
        server_version = "multiq-metrics"

        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, "text/plain; charset=utf-8", b"multiq metrics: /metrics\n")
                return
            if path != "/metrics":
                self._send(404, "text/plain; charset=utf-8", b"Not found\n")
                return
            try:
                body = scrape().encode()
            except Exception as exc:  # Redis away: the scrape fails, the server stays
                from multiq.config import mask_url

                logger.warning("Scrape failed: %s", mask_url(str(exc)))
                self._send(503, "text/plain; charset=utf-8",
                           f"Scrape failed: {mask_url(str(exc))}\n".encode())
                return
            self._send(200, CONTENT_TYPE, body)

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

    return MetricsHandler


def make_server(app: Any, address: str, port: int, prefix: str) -> ThreadingHTTPServer:
    """A server (bound, not yet serving) of ``app``'s metrics named after ``prefix``."""
    from multiq.metrics import scrape

    server = ThreadingHTTPServer((address, port), handler(lambda: scrape(app, prefix)))
    server.daemon_threads = True
    return server
