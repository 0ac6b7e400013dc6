"""gunicorn's own error answers as problem details.

Some requests never reach the app: a request line over ``limit_request_line`` (414), too many
or too large header fields (431), bad framing (an invalid ``Content-Length``, a broken chunk,
an invalid request line: 400), a transfer coding gunicorn does not implement (501). gunicorn
answers those itself, with an HTML page, through ``gunicorn.util.write_error``; installing
`write_problem` in its place makes them RFC 9457 problem JSON like every other error of the
API. The client's bytes are never echoed back (gunicorn's own message quotes them).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from yabot.api.problems import PROBLEM_JSON

#: gunicorn's statuses → our problem codes (the last segment of ``type``).
FRAMING_CODES = {
    400: "invalid-request", 403: "forbidden", 414: "uri-too-long", 417: "expectation-failed",
    431: "header-fields-too-large", 500: "internal", 501: "not-implemented",
}


def problem_bytes(status: int, reason: str) -> bytes:
    """The whole HTTP/1.1 answer gunicorn sends for ``status``: problem JSON, then close."""
    body = json.dumps({
        "type": f"/problems/{FRAMING_CODES.get(status, 'invalid-request')}",
        "title": reason,
        "status": status,
    }).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: {PROBLEM_JSON}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for ``gunicorn.util.write_error`` (same arguments; ``mesg`` is not sent)."""
    from gunicorn import util  # type: ignore[import-untyped]

    util.write_nonblock(sock, problem_bytes(status_int, reason))


def install() -> None:
    """Make this process's gunicorn answer its own errors with `write_problem`. Idempotent;
    call it in the worker (gunicorn's workers look ``util.write_error`` up at each error)."""
    from gunicorn import util

    patched: Any = write_problem
    util.write_error = patched
