"""One HTTP request written byte for byte: versions and headers no client library sends."""

from __future__ import annotations

import socket

__all__ = ["raw_status"]


def raw_status(port: int, request: bytes, *, timeout: float = 10.0) -> int:
    """The status code a server on ``127.0.0.1:port`` answers to ``request``.

    ``request`` is the whole head (``b"GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n"``).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise AssertionError(f"not an HTTP answer: {status_line!r}")
    return int(parts[1])
