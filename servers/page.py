"""Serve the demo clinic page (web/) with its chat widget, on loopback.

A tiny static file server (the standard library's http.server, in a thread) used by
`make run` (servers/launcher.py) and the browser test. It serves:

* the page's own files in web/ (index.html, style.css, chat.js, ...),
* /config.js, written here: the socket.io URL of the Rasa server the widget talks to, the
  clinic's name and phone (clinic.yml),
* /vendor/socket.io.min.js, socket.io-client's browser build from web/node_modules (`npm ci`
  in web/); the widget itself is web/chat.js and web/chat.css,

and nothing else: no directory listings, no node_modules, no package files. Every
response carries a Content-Security-Policy that only allows this server and the Rasa
server, so the page loads nothing from a CDN and runs no inline or injected script.
"""

from __future__ import annotations

import argparse
import json
import threading
import urllib.parse
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

from common import settings
from common.clinic import load_settings
from common.paths import WEB_ROOT

SOCKETIO_BUNDLE = WEB_ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
SOCKETIO_URL_PATH = "/vendor/socket.io.min.js"
CONFIG_URL_PATH = "/config.js"
PRIVATE_NAMES = {"package.json", "package-lock.json", "node_modules"}


def websocket_url(http_url: str) -> str:
    """http://host:port -> ws://host:port (https -> wss)."""
    return "ws" + http_url[len("http") :] if http_url.startswith("http") else http_url


def content_security_policy(socket_url: str) -> str:
    """Only this server's files; only the Rasa server to talk to; no inline script."""
    rasa = socket_url.rstrip("/")
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {rasa} {websocket_url(rasa)}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def socketio_bundle() -> bytes:
    """socket.io-client's browser build (the widget's only dependency)."""
    if not SOCKETIO_BUNDLE.is_file():
        raise FileNotFoundError(f"{SOCKETIO_BUNDLE} is missing: run `npm ci` in {WEB_ROOT}")
    return SOCKETIO_BUNDLE.read_bytes()


def config_script(socket_url: str) -> bytes:
    """The generated /config.js: the Rasa server to talk to, the clinic's name and phone (clinic.yml)."""
    clinic = load_settings()
    settings = json.dumps({"socketUrl": socket_url.rstrip("/"), "title": clinic.name, "phone": clinic.phone})
    return (
        f"// Written by servers/page.py: where the chat widget finds the assistant.\n"
        f"window.CLINIC_CHAT_CONFIG = {settings};\n"
    ).encode()


class _PageServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows the page's generated scripts and its policy."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: Callable[..., Any], generated: dict[str, bytes], csp: str
    ) -> None:
        super().__init__(address, handler)
        self.generated = generated  # URL path -> JavaScript served from memory
        self.csp = csp


class PageRequestHandler(SimpleHTTPRequestHandler):
    """GET/HEAD of web/'s own files, /config.js and the widget bundle; 404 for anything else."""

    server: _PageServer

    def send_head(self) -> Any | None:  # type: ignore[override]
        """/config.js or the widget (from memory), or the file translate_path names."""
        body = self.server.generated.get(urllib.parse.urlsplit(self.path).path)
        if body is not None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return BytesIO(body)
        return super().send_head()

    def translate_path(self, path: str) -> str:
        """web/'s files; a missing file for private ones (node_modules, package files, dot files)."""
        target = Path(super().translate_path(path))
        inside = target.relative_to(WEB_ROOT).parts if target.is_relative_to(WEB_ROOT) else ("..",)
        if any(part in PRIVATE_NAMES or part.startswith(".") for part in inside):
            return str(WEB_ROOT / "not-found")
        return str(target)

    def list_directory(self, path: Any) -> None:  # type: ignore[override]
        """No directory listings."""
        self.send_error(HTTPStatus.NOT_FOUND, "Not found")
        return None

    def end_headers(self) -> None:
        """Security headers on every response; the page always fresh (it is tiny)."""
        self.send_header("Content-Security-Policy", self.server.csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the servers' own logs are what matter."""


class PageServer:
    """The demo page on http://host:port, in a background thread; a context manager."""

    def __init__(self, port: int, socket_url: str, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.socket_url = socket_url
        self._server: _PageServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> PageServer:
        """Bind the port and serve; raise if the widget is not installed (`npm ci` in web/)."""
        generated = {SOCKETIO_URL_PATH: socketio_bundle(), CONFIG_URL_PATH: config_script(self.socket_url)}
        server = _PageServer(
            (self.host, self.port),
            partial(PageRequestHandler, directory=str(WEB_ROOT)),
            generated,
            content_security_policy(self.socket_url),
        )
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="page-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> PageServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def main() -> None:
    """Serve only the page (the assistant started elsewhere, e.g. by `make run`)."""
    deployment = settings.current()
    parser = argparse.ArgumentParser(prog="clinic-page", description=main.__doc__)
    parser.add_argument("--port", type=int, default=deployment.web_port)
    parser.add_argument(
        "--socket-url", default=f"http://127.0.0.1:{deployment.rasa_port}", help="the Rasa server"
    )
    args = parser.parse_args()
    with PageServer(args.port, args.socket_url) as page:
        print(f"Open http://localhost:{page.port}  (Ctrl-C stops)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
