"""``python -m tests.support.uvicorn_fd --fd N [uvicorn options]``: uvicorn on an
inherited *TCP* listening socket.

uvicorn's own ``--fd`` opens the descriptor as a UNIX socket
(``socket.fromfd(fd, AF_UNIX, SOCK_STREAM)``), so the sockets it accepts also claim to
be UNIX sockets and the event loop never sets ``TCP_NODELAY`` on them. With Nagle's
algorithm and delayed ACKs, a keep-alive client then waits about 40 ms for most
responses: every server looks alike, at ~25 requests per second per connection.
Here the descriptor is opened with the family, type and protocol it really has.
"""

from __future__ import annotations

import os
import socket

import uvicorn.main


def _fromfd(fd: int, family: int = -1, type: int = -1, proto: int = -1) -> socket.socket:
    return socket.socket(fileno=os.dup(fd))  # the kernel tells the family and type


if __name__ == "__main__":
    socket.fromfd = _fromfd  # type: ignore[assignment]
    uvicorn.main.main()
