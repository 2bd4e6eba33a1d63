"""The hostile HTTP server of the download tests: ``http_server``, a real server on 127.0.0.1 for one test,
serving files from ``tmp_path/www`` and a few endpoints that misbehave as servers do (redirect loops,
stalls, trickles, bodies cut short, Basic auth). A plugin of ``tests/conftest.py`` (``pytest_plugins``),
so the fixture is there for every test."""

from __future__ import annotations

import base64
import functools
import http.server
import sys
import threading
import time
from pathlib import Path

import pytest


class Served(tuple):
    """``(base_url, root_dir)``, plus ``hits``: how many times each ``/counted/NAME`` was requested;
    ``cut_short``: the names ``/flaky/NAME`` serves cut short (remove one to fix the server);
    ``authorizations``: the ``Authorization`` header of each ``/auth/NAME`` request (None: none)."""

    hits: dict[str, int]
    cut_short: set[str]
    authorizations: list


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that stops reading (a size cap, a deadline) is what the hostile endpoints test.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@pytest.fixture
def http_server(tmp_path):
    """Serve files from tmp_path/www on 127.0.0.1 during the test; yields ``(base URL, root)``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = QuietServer(("127.0.0.1", 0), handler)
    server.hits, server.cut_short, server.authorizations = {}, set(), []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served = Served((f"http://127.0.0.1:{server.server_address[1]}", root))
    served.hits, served.cut_short, served.authorizations = server.hits, server.cut_short, server.authorizations
    yield served
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, plus a few hostile endpoints:

    - ``/redirect/N/NAME``: N redirects, then NAME; ``/loop``: redirects to itself forever;
    - ``/to-file``: redirects to a ``file://`` URL;
    - ``/to-ftp``: redirects to an ``ftp://`` URL (which urllib alone would follow);
    - ``/stall``: accepts and never answers (for 3 s); ``/trickle``: an endless body, a byte at a time;
    - ``/huge``: declares a 1 GB body; ``/counted/NAME``: NAME, counting requests in ``server.hits``;
    - ``/slow/N``: a body of N bytes, one every ``SLOW_BYTE_S``; ``/slow-status``: the status line so;
    - ``/flaky/NAME``: while NAME is in ``server.cut_short``, half of NAME under NAME's whole
      ``Content-Length``, then the connection closes; ``/cut/NAME``: half of NAME, no length declared;
    - ``/auth/NAME``: NAME for HTTP Basic ``user:secret`` only (else 401), recording each request's
      ``Authorization``; ``/elsewhere/NAME``: redirects to NAME at ``localhost`` (another origin).
    """

    SLOW_BYTE_S = 0.3

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[0] == "redirect":
            hops, name = int(parts[1]), "/".join(parts[2:])
            return self._redirect(f"/redirect/{hops - 1}/{name}" if hops > 1 else f"/{name}")
        if parts[0] == "loop":
            return self._redirect("/loop")
        if parts[0] == "to-file":
            return self._redirect("file:///etc/passwd")
        if parts[0] == "to-ftp":
            return self._redirect("ftp://127.0.0.1/a.png")
        if parts[0] == "stall":
            time.sleep(3)
            return
        if parts[0] == "trickle":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(300):
                try:
                    self.wfile.write(b"\x89")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.01)
            return
        if parts[0] == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            return
        if parts[0] in ("slow", "slow-status"):
            return self._slow(int(parts[1]) if parts[0] == "slow" else 0)
        if parts[0] in ("flaky", "cut"):
            data = (Path(self.directory) / parts[1]).read_bytes()
            short = parts[0] == "cut" or parts[1] in self.server.cut_short
            if not short:
                self.path = "/" + parts[1]
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            if parts[0] == "flaky":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        if parts[0] == "auth":
            self.server.authorizations.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"user:secret").decode():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.path = "/" + parts[1]
        if parts[0] == "elsewhere":
            return self._redirect(f"http://localhost:{self.server.server_address[1]}/{'/'.join(parts[1:])}")
        if parts[0] == "counted":
            self.server.hits[parts[1]] = self.server.hits.get(parts[1], 0) + 1
            self.path = "/" + parts[1]
        return super().do_GET()

    def _slow(self, body_bytes: int):
        """A byte every SLOW_BYTE_S: of the status line (``body_bytes`` 0), else of the body."""
        head = b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n"
        for i, byte in enumerate(head if not body_bytes else b"\x89" * body_bytes):
            if body_bytes and i == 0:
                self.wfile.write(head)
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            time.sleep(self.SLOW_BYTE_S)
        self.close_connection = True

    def _redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass
