"""A small static file server on 127.0.0.1, in a daemon thread (for pages that need http://)."""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        return None


class StaticServer:
    """Serves `directory` over HTTP until `close()`; a context manager.

    Args:
        directory: the folder to serve.
        host: address to bind; 127.0.0.1 keeps it off the network.
        port: 0 picks a free port.
    """

    def __init__(self, directory: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name=f"static-server-{self.port}")
        self._thread.start()
        self._closed = False

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. http://127.0.0.1:41234/."""
        host = self._httpd.server_address[0]
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        """Stop serving. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StaticServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
