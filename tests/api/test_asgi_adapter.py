"""`yabot.api.asgi.BufferedWsgi` in process: what the WSGI app sees of an ASGI request, and
when the body is not read at all. (Served by gunicorn: tests/api/test_slow_clients.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from yabot.api import asgi
from yabot.api.asgi import BufferedWsgi, wsgi_environ

Message = MutableMapping[str, Any]


def _scope(method: str = "GET", path: str = "/", headers: list[tuple[bytes, bytes]] | None = None,
           query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query,
            "headers": headers or [], "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555), "root_path": ""}


class Echo:
    """A WSGI app that answers with what it was given, and remembers the environ."""

    def __init__(self) -> None:
        self.environ: dict[str, Any] = {}

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.environ = environ
        body = environ["wsgi.input"].read()
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"got:", body]


def _serve(app: BufferedWsgi, scope: dict[str, Any], messages: list[Message],
           ) -> tuple[list[Message], int]:
    """Run one request; the messages sent back and how many times the body was read."""
    sent: list[Message] = []
    reads = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # a client that sends nothing more
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, reads


def _app(echo: Echo, read_timeout: float = 60.0) -> BufferedWsgi:
    app = BufferedWsgi(echo)
    app.configure(threads=1, max_body_bytes=16, read_timeout=read_timeout)
    return app


def test_the_wsgi_app_gets_the_whole_body_and_its_answer_goes_back_whole() -> None:
    echo = Echo()
    app = _app(echo)
    try:
        sent, _ = _serve(app, _scope("POST", headers=[(b"content-length", b"6")]), [
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.request", "body": b"def", "more_body": False},
        ])
    finally:
        app.close()
    assert sent[0]["status"] == 201
    assert (b"content-length", b"10") in sent[0]["headers"]
    assert (b"content-type", b"text/plain") in sent[0]["headers"]
    assert sent[1]["body"] == b"got:abcdef"
    assert app.reading == 0


def test_a_body_over_the_limit_or_without_length_is_not_read() -> None:
    for headers in ([(b"content-length", b"17")], [(b"transfer-encoding", b"chunked")]):
        echo = Echo()
        app = _app(echo)
        try:
            sent, reads = _serve(app, _scope("POST", headers=headers),
                                 [{"type": "http.request", "body": b"x", "more_body": True}])
        finally:
            app.close()
        assert reads == 0  # the app decides from the headers (413, 411)
        assert sent[1]["body"] == b"got:"


def test_a_body_that_stops_arriving_is_408_and_the_app_never_called() -> None:
    echo = Echo()
    app = _app(echo, read_timeout=0.05)
    try:
        sent, _ = _serve(app, _scope("POST", headers=[(b"content-length", b"6")]),
                         [{"type": "http.request", "body": b"abc", "more_body": True}])
    finally:
        app.close()
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"request-timeout" in sent[1]["body"]
    assert echo.environ == {}
    assert (app.reading, app.timed_out) == (0, 1)


def test_a_body_still_trickling_at_the_deadline_is_408_though_a_read_kept_its_chunk() -> None:
    """gunicorn's ``receive`` waits in Python 3.11's ``asyncio.wait_for``, which returns a
    chunk that arrives together with a cancellation instead of raising it: the read
    deadline's cancellation is then lost. Each read here does that."""
    echo = Echo()
    app = _app(echo, read_timeout=0.05)
    sent: list[Message] = []

    async def trickle() -> Message:
        # The chunk arrives as the deadline's cancellation does, and wins.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.01)
        return {"type": "http.request", "body": b"a", "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        asyncio.run(app(_scope("POST", headers=[(b"content-length", b"16")]), trickle, send))
    finally:
        app.close()
    assert sent[0]["status"] == 408
    assert echo.environ == {}
    assert (app.reading, app.timed_out) == (0, 1)


def test_a_client_gone_mid_body_is_not_served() -> None:
    echo = Echo()
    app = _app(echo)
    try:
        sent, _ = _serve(app, _scope("POST", headers=[(b"content-length", b"6")]),
                         [{"type": "http.request", "body": b"abc", "more_body": True},
                          {"type": "http.disconnect"}])
    finally:
        app.close()
    assert echo.environ == {}
    assert sent[0]["status"] == 408


def test_the_environ_is_pep_3333() -> None:
    environ = wsgi_environ(
        _scope("GET", "/user/ñ", query=b"a=1&b=%20",
               headers=[(b"content-type", b"application/json"), (b"x-seen", b"one"),
                        (b"x-seen", b"two"), (b"content-length", b"0")]), b"")
    # PATH_INFO carries the path's UTF-8 bytes as latin-1 (Falcon decodes it back).
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/user/ñ"
    assert environ["QUERY_STRING"] == "a=1&b=%20"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "0"
    assert environ["HTTP_X_SEEN"] == "one,two"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert "HTTP_CONTENT_TYPE" not in environ


def test_header_names_any_client_sends_translate_and_what_is_kept_stays_bounded() -> None:
    """Header names are translated once and kept, but only up to a bound: a client sending
    ever new names gets them all translated and cannot grow the table."""
    names = [f"X-Made-Up-{n}".encode() for n in range(3 * asgi._MAX_KEPT_NAMES)]

    class ManyHeaders(Echo):
        def __call__(self, environ: dict[str, Any],
                     start_response: Callable[..., Any]) -> Iterable[bytes]:
            self.environ = environ
            start_response("200 OK", [(f"X-Answer-{n}", "v") for n in range(len(names))])
            return [b""]

    echo = ManyHeaders()
    app = _app(echo)
    try:
        sent, _ = _serve(app, _scope(headers=[(name, b"v") for name in names]), [])
    finally:
        app.close()
    assert all(echo.environ[f"HTTP_X_MADE_UP_{n}"] == "v" for n in range(len(names)))
    answered = {name for name, _ in sent[0]["headers"]}
    assert {f"x-answer-{n}".encode() for n in range(len(names))} <= answered
    assert asgi._environ_key.cache_info().currsize <= asgi._MAX_KEPT_NAMES
    assert asgi._header_name.cache_info().currsize <= asgi._MAX_KEPT_NAMES
