"""A download's total deadline, enforced on the socket itself.

A per-read timeout alone cannot bound a download: a server that sends a byte every few seconds never
trips it, and ``http.client`` reads the status line, the headers and each block of the body in many
socket reads. Here every socket read of a response is given at most the time left, so the whole
download (after the connection, itself bounded by the per-read timeout) ends by its deadline.
``sources.py`` builds its urllib opener from ``deadline_handlers``.
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import ssl
import time
import urllib.request
from typing import Any, Callable, Optional


class Deadline:
    """One download's time: each socket operation may wait ``per_read`` seconds, and none past the end."""

    def __init__(self, total: float, per_read: float) -> None:
        self.end, self.per_read = time.monotonic() + total, per_read

    def timeout(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the download's total time is up")
        return min(self.per_read, left)


class _DeadlineSocketReader(io.RawIOBase):
    """A response's socket, each read given at most the time left: a per-read timeout alone lets a
    server that sends a byte every few seconds hold the download (status line, headers, body) forever."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock, self._raw, self._deadline = sock, sock.makefile("rb", buffering=0), deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> Optional[int]:
        self._sock.settimeout(self._deadline.timeout())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    # http.client reads everything through ``fp``; tests/inputs/test_sources.py pins that it does.
    def __init__(self, sock: socket.socket, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()
        self.fp = io.BufferedReader(_DeadlineSocketReader(sock, deadline))


def deadline_handlers(deadline: Deadline) -> list[urllib.request.BaseHandler]:
    """urllib's http and https handlers with connections whose every read keeps to ``deadline``."""

    def connection(cls: type[http.client.HTTPConnection]) -> Callable[..., http.client.HTTPConnection]:
        def make(host: str, timeout: Any = None, **kwargs: Any) -> http.client.HTTPConnection:
            made = cls(host, timeout=deadline.timeout(), **kwargs)
            made.response_class = functools.partial(_DeadlineResponse, deadline=deadline)
            return made

        return make

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(connection(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(connection(http.client.HTTPSConnection), req, context=ssl.create_default_context())

    return [HTTP(), HTTPS()]
