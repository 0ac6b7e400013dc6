"""Slow clients cannot stall the API (issue 19, requirement 5).

Twice as many clients as the server has request threads trickle a request head one byte at a
time, as many again trickle a body; while every one of them is still connected and
unanswered, ``/healthz`` and an authenticated route answer. Under gunicorn's gthread worker
each of these connections held a thread and nothing else was served. A client slower than
``API_READ_TIMEOUT`` is answered 408 and cut off.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.api import USERS, ServedApi, make_token, served_api
from tests.support.http import request
from tests.support.waiting import ASK, eventually, scaled

THREADS = 4
SLOW = 2 * THREADS  # of each kind: heads, and bodies
#: The pause between two bytes of a slow client (seconds).
INTERVAL = 0.2
BODY_LENGTH = 10_000  # at one byte per INTERVAL, far longer than any test waits


class Trickler:
    """Sends one more byte on each of its sockets every `INTERVAL`, on its own thread, until
    stopped; ``sent`` counts the rounds done. A socket that fails to take its byte (closed by
    the server) is dropped from the round and remembered in ``refused``."""

    def __init__(self, sockets: dict[socket.socket, bytes]) -> None:
        self.pending = dict(sockets)
        self.refused: list[socket.socket] = []
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            for sock, data in list(self.pending.items()):
                if not data:
                    continue
                try:
                    sock.send(data[:1])
                except OSError:
                    del self.pending[sock]
                    self.refused.append(sock)
                    continue
                self.pending[sock] = data[1:]
            self.rounds += 1

    def __enter__(self) -> Trickler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(scaled(10))


def _connect(api: ServedApi, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.gunicorn.port), timeout=ASK)
    sock.sendall(first)
    return sock


def _body_head(user: int, token: str) -> bytes:
    return (f"PUT /user/{user}/preferences HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BODY_LENGTH}\r\n\r\n").encode()


def _unanswered_and_open(sock: socket.socket) -> bool:
    """Nothing to read: neither an answer nor the server's end of the connection."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def _reading(api: ServedApi) -> int:
    text = request("GET", api.base_url + "/metrics", timeout=scaled(60)).body.decode()
    match = re.search(r"^yabot_http_requests_reading (\d+)$", text, re.MULTILINE)
    assert match, text
    return int(match.group(1))


@contextmanager
def _slow_clients(api: ServedApi, heads: int, bodies: int) -> Iterator[Trickler]:
    token = make_token(["users:write"])
    sockets: dict[socket.socket, bytes] = {}
    try:
        for n in range(heads):
            # The head never ends: header after header, one byte at a time.
            sockets[_connect(api, b"G")] = (b"ET /healthz HTTP/1.1\r\nHost: t\r\n"
                                             + b"X-Slow-%d: " % n + b"s" * 4000)
        for n in range(bodies):
            sockets[_connect(api, _body_head(USERS[n % len(USERS)], token))] = (
                b'{"language": "' + b"e" * BODY_LENGTH)
        with Trickler(sockets) as trickler:
            yield trickler
    finally:
        for sock in sockets:
            sock.close()


def test_twice_as_many_slow_clients_as_threads_do_not_stall_healthz_or_a_route(
    tmp_path: Path,
) -> None:
    with served_api(tmp_path, API_THREADS=str(THREADS),
                    API_READ_TIMEOUT=str(scaled(600))) as api, \
            _slow_clients(api, heads=SLOW, bodies=SLOW) as slow:
        # Every slow body is being read, and every slow head has had bytes after its first.
        eventually(lambda: _reading(api) == SLOW, "the slow bodies are being read")
        rounds = slow.rounds
        eventually(lambda: slow.rounds >= rounds + 2, "the slow clients sent more bytes")

        health = request("GET", api.base_url + "/healthz", timeout=scaled(60))
        state = request("GET", f"{api.base_url}/user/{USERS[0]}/state", timeout=scaled(60),
                        headers={"Authorization": f"Bearer {make_token(['users:read'])}"})

        assert health.status == 200, health.body
        assert state.status == 200, state.body
        # The fast answers came while every slow client was still connected and unanswered.
        assert not slow.refused
        assert all(_unanswered_and_open(sock) for sock in slow.pending)
        assert len(slow.pending) == 2 * SLOW
        assert _reading(api) == SLOW


def _answer(sock: socket.socket, api: ServedApi) -> bytes:
    """Everything the server sends until it closes the connection."""
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except TimeoutError:  # seen once under a loaded suite: what did the server do?
        raise AssertionError(f"no close within {ASK:.0f} s after {answer!r}; the server's "
                             f"log:\n{api.gunicorn.log()[-6000:]}") from None
    return answer


def test_a_body_slower_than_the_read_deadline_is_408_and_closed(tmp_path: Path) -> None:
    with served_api(tmp_path, API_READ_TIMEOUT="1") as api, \
            _slow_clients(api, heads=0, bodies=1) as slow:
        (sock,) = slow.pending
        answer = _answer(sock, api)  # returns once the server closes the connection
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(body)["type"] == "/problems/request-timeout"
        metrics = request("GET", api.base_url + "/metrics", timeout=scaled(60)).body.decode()
        assert "yabot_http_read_timeouts_total 1\n" in metrics


def test_a_head_slower_than_the_read_deadline_is_408_and_closed(tmp_path: Path) -> None:
    with served_api(tmp_path, API_READ_TIMEOUT="1") as api, \
            _slow_clients(api, heads=1, bodies=0) as slow:
        (sock,) = slow.pending
        answer = _answer(sock, api)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(body[:body.index(b"}") + 1])["type"] == "/problems/request-timeout"
        # The server stays up for everyone else.
        assert request("GET", api.base_url + "/healthz", timeout=scaled(60)).status == 200


def test_a_client_gone_mid_body_leaves_nothing_behind(tmp_path: Path) -> None:
    with served_api(tmp_path, API_THREADS="1") as api:
        with _slow_clients(api, heads=0, bodies=2):
            eventually(lambda: _reading(api) == 2, "the slow bodies are being read")
        # Both closed their end: the reads end, and the one request thread is free.
        eventually(lambda: _reading(api) == 0, "the abandoned reads ended")
        assert request("GET", api.base_url + "/healthz", timeout=scaled(60)).status == 200


def test_a_body_larger_than_any_route_takes_is_refused_without_being_read(
    tmp_path: Path,
) -> None:
    with served_api(tmp_path, BOT_WEBHOOK_MAX_BODY="1048576") as api, \
            socket.create_connection(("127.0.0.1", api.gunicorn.port), timeout=ASK) as sock:
        token = make_token(["users:write"])
        sock.sendall(
            f"PUT /user/{USERS[0]}/preferences HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2 * 1048576}\r\n\r\n".encode() + b'{"language": "')
        answer = _answer(sock, api)  # the rest of the body is never sent
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), answer
        assert json.loads(body)["type"] == "/problems/payload-too-large"
