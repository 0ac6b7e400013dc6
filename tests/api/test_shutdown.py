"""SIGTERM while requests are in flight: readiness fails at once, the requests complete, then
the worker and gunicorn exit 0 (clients that already left hold nothing up)."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
from pathlib import Path

from tests.support.api import USERS, make_token, served_api
from tests.support.http import request
from tests.support.waiting import ASK, eventually

IN_FLIGHT = 3


def _being_read(base_url: str) -> int:
    """Requests the worker is reading (their bodies still arriving; no thread held yet)."""
    text = request("GET", base_url + "/metrics").body.decode()
    match = re.search(r"^yabot_http_requests_reading (\d+)$", text, re.MULTILINE)
    assert match, text
    return int(match.group(1))


def test_sigterm_lets_in_flight_requests_finish_then_exits_0(tmp_path: Path) -> None:
    token = make_token(["users:write"])
    bodies = [json.dumps({"language": "en", "notifications": i % 2 == 0}).encode()
              for i in range(IN_FLIGHT)]
    with served_api(tmp_path) as api:
        sockets = []
        try:
            for user, body in zip(USERS, bodies, strict=True):
                sock = socket.create_connection(("127.0.0.1", api.gunicorn.port), timeout=ASK)
                sock.sendall(
                    f"PUT /user/{user}/preferences HTTP/1.1\r\nHost: t\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body[:5]  # the rest comes after SIGTERM: the worker waits for it
                )
                sockets.append(sock)
            eventually(lambda: _being_read(api.base_url) == IN_FLIGHT,
                       "the requests are being read")

            # A kept-alive connection: gunicorn still answers on it for a moment after SIGTERM.
            kept_alive = http.client.HTTPConnection("127.0.0.1", api.gunicorn.port, timeout=ASK)
            kept_alive.request("GET", "/readyz")
            ready = kept_alive.getresponse()
            assert ready.status == 200
            ready.read()

            # Clients that send a whole request and close at once (a probe that timed out):
            # each is answered into a reset connection, which must still count as closed, or
            # the stop below waits out its whole graceful timeout and the master SIGKILLs the
            # worker before its actor tree stops.
            for _ in range(IN_FLIGHT):
                with socket.create_connection(("127.0.0.1", api.gunicorn.port)) as gone:
                    gone.sendall(b"GET /gone-at-once HTTP/1.1\r\nHost: t\r\n\r\n")
            eventually(lambda: api.gunicorn.log().count("path=/gone-at-once") == IN_FLIGHT,
                       "the requests of the clients that left are answered")

            api.gunicorn.process.send_signal(signal.SIGTERM)
            eventually(lambda: "readiness fails" in api.gunicorn.log(),
                       "the worker began shutting down")
            kept_alive.request("GET", "/readyz")
            draining = kept_alive.getresponse()
            assert draining.status == 503
            assert draining.getheader("Retry-After") == "1"
            assert draining.getheader("Connection") == "close"  # not reset: told to go
            checks = json.loads(draining.read())["checks"]
            assert checks["shutdown"][0]["status"] == "fail"
            kept_alive.close()

            for sock, body in zip(sockets, bodies, strict=True):
                sock.sendall(body[5:])
            for sock, body in zip(sockets, bodies, strict=True):
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                head, _, payload = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), answer
                assert json.loads(payload) == json.loads(body)
        finally:
            for sock in sockets:
                sock.close()
        exit_code = api.gunicorn.wait()
        assert exit_code == 0, api.gunicorn.log()
    log = api.gunicorn.log()
    assert "actor tree stopped" in log
    assert "exited with code" not in log  # the worker exited 0 (gunicorn logs any other code)
    assert "SIGKILL" not in log
