"""The WSGI app served by an asyncio worker: a request reaches a thread only once it is whole.

gunicorn's gthread worker gives a connection a thread as soon as its first byte arrives, and
the thread then reads headers and body with blocking calls: as many clients trickling bytes
as there are threads and nothing is served, ``/healthz`` included. Under gunicorn's ``asgi``
worker the event loop reads every connection; `BufferedWsgi` waits on the loop for the whole
body (as a buffering proxy would) and only then hands the request to the same Falcon WSGI app
on one of ``API_THREADS`` threads. A slow client costs a coroutine and a socket, never a
thread. The app itself, its middleware and its synchronous asks are unchanged (README
"Serving").

A request that the ``shortcut`` answers is answered on the event loop itself, without the
thread hand-offs or the app: only answers that never block (a state read a session's
snapshot already answered, `yabot.api.snapshot_reads`).

A body that has not arrived within ``API_READ_TIMEOUT`` seconds of its headers is answered
408 and the connection closed. A body larger than the largest the app accepts is not read:
the app refuses it from its ``Content-Length`` (413), or a chunked one (411), as before.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from yabot.api.problems import PROBLEM_JSON

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: A whole answer: status, headers (lower-case names) and body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
#: Answers a request from its head alone, without blocking, or says None (the app answers).
Shortcut = Callable[[Scope], Answer | None]

#: Header names translated and kept (`_environ_key`, `_header_name`): most requests repeat a
#: few, and a client sending ever new names cannot grow the tables past this.
_MAX_KEPT_NAMES = 256

_TIMED_OUT = json.dumps({"type": "/problems/request-timeout", "title": "Request Timeout",
                         "status": 408}).encode()


class BodyTimedOut(Exception):
    """The request body did not arrive within the read deadline."""


class BufferedWsgi:
    """An ASGI app running ``app`` (WSGI) on a pool of threads, each request read whole first.

    `configure` sets the pool size, the largest body read and the read deadline; it runs in
    the worker, after fork (a pool made in gunicorn's master would not survive the fork).
    """

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._pool: ThreadPoolExecutor | None = None
        self._max_body = 0
        self._read_timeout = 0.0
        #: Requests whose body is still arriving (touched on the event loop only).
        self.reading = 0
        self.timed_out = 0
        #: Requests the shortcut answered, for /metrics.
        self.inline_answered = 0
        #: Set in the worker once the app's pieces exist; None runs every request in the app.
        self.shortcut: Shortcut | None = None

    def configure(self, threads: int, max_body_bytes: int, read_timeout: float) -> None:
        self.close()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="api-request")
        self._max_body = max_body_bytes
        self._read_timeout = read_timeout

    def close(self) -> None:
        """Stop the request threads (requests already running finish on their own)."""
        pool, self._pool = self._pool, None
        self.shortcut = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: none served
            return
        shortcut = self.shortcut
        if shortcut is not None:
            answer = shortcut(scope)
            if answer is not None:
                self.inline_answered += 1
                await _send_whole(send, *answer)
                return
        length = _content_length(scope)
        if length is None or length == 0 or length > self._max_body:
            # Nothing to read: the app answers from the head alone (a refusal when a body is
            # too large or not framed by a length). No task and no timer: measured
            # in-process, the ``wait_for`` below was more than half of what a state read
            # answered on the loop cost (84-114 us of CPU with it, 38-41 without).
            body = b""
        else:
            self.reading += 1
            deadline = asyncio.get_running_loop().time() + self._read_timeout
            try:
                body = await asyncio.wait_for(self._read_body(receive, length, deadline),
                                              self._read_timeout)
            except (TimeoutError, BodyTimedOut):
                self.timed_out += 1
                await _send_whole(send, 408, [(b"content-type", PROBLEM_JSON.encode()),
                                              (b"connection", b"close")], _TIMED_OUT)
                return
            finally:
                self.reading -= 1
        pool = self._pool
        if pool is None:  # not configured yet, or shutting down
            raise RuntimeError("BufferedWsgi.configure was not called in this worker")
        environ = wsgi_environ(scope, body)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(pool, self._respond, environ)
        await _send_whole(send, *answer)

    async def _read_body(self, receive: Receive, length: int, deadline: float) -> bytes:
        """The whole body of ``length`` bytes.

        `BodyTimedOut` once a chunk arrives past ``deadline`` with more to come. The caller's
        ``wait_for`` cancels a read still waiting then, but a cancellation that lands as a
        chunk arrives is lost: gunicorn's ``receive`` waits in Python 3.11's
        ``asyncio.wait_for``, which then returns the chunk instead of raising. A client
        trickling a byte at a time was seen holding its connection unanswered past the
        deadline that way (in the suite: one run in ten)."""
        loop = asyncio.get_running_loop()
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BodyTimedOut("the client went away before its body was complete")
            chunk = message.get("body", b"")
            chunks.append(chunk)
            received += len(chunk)
            if not message.get("more_body", False) or received >= length:
                return b"".join(chunks)
            if loop.time() >= deadline:
                raise BodyTimedOut("the body was still arriving at the read deadline")

    def prometheus_text(self) -> str:
        """Requests being read (slow clients show here, holding no thread) and bodies that
        missed the read deadline."""
        return (
            "# HELP yabot_http_requests_reading Requests whose body is still arriving.\n"
            "# TYPE yabot_http_requests_reading gauge\n"
            f"yabot_http_requests_reading {self.reading}\n"
            "# HELP yabot_http_read_timeouts_total Requests answered 408: the body came too "
            "slowly.\n"
            "# TYPE yabot_http_read_timeouts_total counter\n"
            f"yabot_http_read_timeouts_total {self.timed_out}\n"
            "# HELP yabot_http_inline_requests_total Requests answered on the event loop, "
            "without the app (state reads from a snapshot).\n"
            "# TYPE yabot_http_inline_requests_total counter\n"
            f"yabot_http_inline_requests_total {self.inline_answered}\n"
        )

    def _respond(self, environ: dict[str, Any]) -> Answer:
        """Run the WSGI app in a request thread; the whole answer, buffered (every answer of
        the API is small JSON or text)."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return written.append

        written: list[bytes] = []
        result = self._app(environ, start_response)
        try:
            content = b"".join([*written, *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return (int(status[:3]),
                [(_header_name(name), value.encode("latin-1")) for name, value in headers],
                content)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP ``scope`` with its whole ``body``."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        key = _environ_key(raw_name)
        value = raw_value.decode("latin-1")
        # Repeated fields are one comma-separated value (RFC 9110 section 5.3).
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


@functools.lru_cache(maxsize=_MAX_KEPT_NAMES)
def _environ_key(raw_name: bytes) -> str:
    """The environ key of a header field name (``HTTP_X_REQUEST_ID``)."""
    name = raw_name.decode("latin-1").upper().replace("-", "_")
    return name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"


@functools.lru_cache(maxsize=_MAX_KEPT_NAMES)
def _header_name(name: str) -> bytes:
    """A response header name as the ASGI server takes it (lower case, bytes)."""
    return name.lower().encode("latin-1")


async def _send_whole(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                      body: bytes) -> None:
    for name, _ in headers:  # a loop, not any(): no generator on every request
        if name == b"content-length":
            break
    else:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to do: the actor tree starts in gunicorn's ``post_worker_init``."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
