"""gunicorn's own error answers as problem details.

Some requests never reach the app: a request line over ``limit_request_line`` (414), too many
or too large header fields (431), bad framing (an invalid ``Content-Length``, a broken chunk,
an invalid request line: 400), a transfer coding gunicorn does not implement (501). gunicorn
answers those itself, with an HTML page, through ``gunicorn.util.write_error`` (the sync
workers) or with plain text through ``ASGIProtocol._send_error_response`` (the ``asgi``
worker YABOT runs); installing `write_problem` and `send_problem` in their place makes them
RFC 9457 problem JSON like every other error of the API. The client's bytes are never echoed
back (gunicorn's own message quotes them).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from typing import Any

from yabot.api.problems import PROBLEM_JSON

#: gunicorn's statuses → our problem codes (the last segment of ``type``).
FRAMING_CODES = {
    400: "invalid-request", 403: "forbidden", 408: "request-timeout", 414: "uri-too-long",
    417: "expectation-failed", 431: "header-fields-too-large", 500: "internal",
    501: "not-implemented",
}


def problem_bytes(status: int, reason: str,
                  extra_headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """The whole HTTP/1.1 answer gunicorn sends for ``status``: problem JSON, then close."""
    body = json.dumps({
        "type": f"/problems/{FRAMING_CODES.get(status, 'invalid-request')}",
        "title": reason,
        "status": status,
    }).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in extra_headers)
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: {PROBLEM_JSON}\r\nContent-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode("latin-1") + body


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for ``gunicorn.util.write_error`` (same arguments; ``mesg`` is not sent)."""
    from gunicorn import util  # type: ignore[import-untyped]

    util.write_nonblock(sock, problem_bytes(status_int, reason))


def send_problem(protocol: Any, status: int, message: str,
                 extra_headers: Iterable[tuple[str, str]] = ()) -> None:
    """Drop-in for ``gunicorn.asgi.protocol.ASGIProtocol._send_error_response`` (same
    arguments; ``message`` is not sent)."""
    from http import HTTPStatus

    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    protocol._safe_write(problem_bytes(status, reason, extra_headers))


def answer_after_half_close(protocol: Any) -> bool | None:
    """``eof_received`` for gunicorn's ``asgi`` protocol: a client may shut its side down once
    its request is sent (RFC 9112 section 9.6); a whole request still gets its answer and the
    connection closes after it. asyncio's default closes at once, so such a client read
    nothing. An end of input in the middle of a request closes, as before."""
    receiver = protocol._body_receiver
    if protocol._current_request is None or receiver is None or not receiver._complete:
        return None
    protocol._keepalive = 0  # no next request can come: close once this one is answered
    return True


def close_transport(protocol: Any) -> None:
    """``_close_transport`` for gunicorn's ``asgi`` protocol that always closes the transport.

    gunicorn's own calls ``write_eof()`` and ``close()`` in one ``try``: when the peer has
    already reset the connection (a client that sent its request and closed at once, answered
    thanks to `answer_after_half_close`), ``shutdown(SHUT_WR)`` fails with ENOTCONN, ``close()``
    is skipped and asyncio never reports the connection lost. The worker then counts it as
    open for ever: its graceful stop waits the whole ``graceful_timeout`` for it and the master
    SIGKILLs it, so the actor tree never stops cleanly."""
    transport = protocol.transport
    if transport is None or protocol._closed:
        return
    protocol._closed = True
    try:
        if transport.can_write_eof():
            transport.write_eof()
    except OSError:
        pass  # the peer is gone: nothing more can be sent, and close() below still runs
    transport.close()


def _time_out_headers(protocol: Any) -> None:
    """The first request's head is still incomplete at its deadline: 408, then close. (Later
    requests on a kept-alive connection have gunicorn's keep-alive timer.)"""
    if protocol._closed or protocol._current_request is not None or protocol.req_count > 1:
        return
    protocol._safe_write(problem_bytes(408, "Request Timeout"))
    protocol._close_transport()


def install(header_timeout: float | None = None) -> None:
    """Make this process's gunicorn answer its own errors with `write_problem` (sync workers)
    and `send_problem` (the ``asgi`` worker), answer half-closed clients and always close a
    finished connection (`close_transport`). With ``header_timeout``, the ``asgi`` worker
    answers 408 and closes a connection whose first request's head has not arrived within
    that many seconds (gunicorn has no such deadline of its own). Call it in the worker
    (gunicorn looks these up at each connection and each error)."""
    from gunicorn import util
    from gunicorn.asgi.protocol import ASGIProtocol  # type: ignore[import-untyped]

    patched: Any = write_problem
    util.write_error = patched
    ASGIProtocol._send_error_response = send_problem
    ASGIProtocol.eof_received = answer_after_half_close
    ASGIProtocol._close_transport = close_transport
    if header_timeout is not None:
        original = getattr(ASGIProtocol.connection_made, "__wrapped__",
                           ASGIProtocol.connection_made)

        def connection_made(protocol: Any, transport: Any) -> None:
            original(protocol, transport)
            protocol.worker.loop.call_later(header_timeout, _time_out_headers, protocol)

        connection_made.__wrapped__ = original  # type: ignore[attr-defined]
        ASGIProtocol.connection_made = connection_made
