"""What webgrove's own sites (the shop, the booking site) share: a threaded HTTP server on
127.0.0.1 by default, served from a daemon thread, and a request handler tuned for browsers.

Keep-alive answers must not wait for Nagle plus the client's delayed ACK (~40 ms a request):
the handler disables Nagle and buffers each response so its headers and body leave in one
write (`handle_one_request` flushes after each request).
"""
from __future__ import annotations

import logging
import sys
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class QuietThreadingServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a browser navigating away, a tree search restoring
    another state) is normal for our sites, not an error worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalServer:
    """Owns an HTTP server and the daemon thread serving it; a context manager.

    Subclasses call `_listen(handler_class, host, port, start, name)` from `__init__`.
    """

    _httpd: QuietThreadingServer
    _thread: threading.Thread | None = None
    _closed: bool = False

    def _listen(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, start: bool, name: str) -> None:
        self._httpd = QuietThreadingServer((host, port), handler)
        if start:
            self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name=f"{name}-{self.port}")
            self._thread.start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. http://127.0.0.1:41234/."""
        return f"http://{self._httpd.server_address[0]}:{self.port}/"

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (for the `serve` commands)."""
        self._httpd.serve_forever()

    def serve_until_interrupted(self, banner: str) -> None:
        """Log `banner`, serve in this thread until Ctrl-C, then close (the `serve` commands)."""
        log.info(banner)
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Stop serving. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SiteHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no Nagle, one write per response, a session cookie."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1
    log_requests = False
    cookie_name = "webgrove_session"

    site: Any  # the server object this handler class answers for (see `serving`)

    @classmethod
    def serving(cls, site: Any) -> type[SiteHandler]:
        """This handler class bound to one site server (http.server makes a handler per request)."""
        return type(cls.__name__, (cls,), {"site": site})

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        if self.log_requests:
            super().log_message(format, *args)

    def session_cookie(self) -> str | None:
        """The session id the client sent, or None."""
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except Exception:
            return None
        morsel = cookie.get(self.cookie_name)
        return morsel.value if morsel else None

    def send_text(self, status: int, text: str, *, content_type: str = "text/html",
                  location: str | None = None, cookie: str | None = None) -> None:
        """One response: optional redirect target and session cookie, never cached."""
        data = text.encode("utf-8")
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        if cookie is not None:
            self.send_header("Set-Cookie", f"{self.cookie_name}={cookie}; Path=/; HttpOnly; SameSite=Lax")
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)
