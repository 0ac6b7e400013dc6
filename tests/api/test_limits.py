"""Bodies and rate limits through real gunicorn: 411, 413, 415, 429 with Retry-After."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
import redis

from tests.support.api import USERS, FailingBridge, ServedApi, make_token, served_api
from tests.support.processes import free_port
from tests.support.redis_server import no_retry
from tests.support.settings import SettingsFactory
from tests.support.waiting import ASK
from yabot.api.app import create_app
from yabot.errors import ConfigError, UserNotFound

USER = USERS[0]


def raw_request(api: ServedApi, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is on a fresh connection; the status, headers and body answered."""
    with socket.create_connection(("127.0.0.1", api.gunicorn.port), timeout=ASK) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_chunked_body_without_length_is_411(api: ServedApi) -> None:
    token = make_token()
    body = b'{"language": "en", "notifications": true}'
    data = (
        f"PUT /user/{USER}/preferences HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    status, headers, answer = raw_request(api, data)
    assert status == 411
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(answer)["type"] == "/problems/length-required"


def test_body_over_the_limit_is_413(api: ServedApi) -> None:
    big = b'{"language": "' + b"e" * (70 * 1024) + b'"}'
    response = api.call("PUT", f"/user/{USER}/preferences", token=make_token(), json_body=big)
    assert response.status == 413
    assert response.json()["type"] == "/problems/payload-too-large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonp"])
def test_body_that_is_not_json_is_415(api: ServedApi, content_type: str) -> None:
    response = api.call("PUT", f"/user/{USER}/preferences", token=make_token(),
                        json_body=b'{"language": "en", "notifications": true}',
                        headers={"Content-Type": content_type})
    assert response.status == 415
    assert response.json()["type"] == "/problems/unsupported-media-type"


def test_unknown_route_is_still_404_and_wrong_method_405(api: ServedApi) -> None:
    big = b"x" * (70 * 1024)
    assert api.call("PUT", "/no/such/route", json_body=big).status == 404
    wrong = api.call("DELETE", f"/user/{USER}/state", token=make_token())
    assert wrong.status == 405
    assert wrong.headers["content-type"] == "application/problem+json"


def _assert_limited_after(api: ServedApi, allowed: int, subject: str) -> None:
    token = make_token(["users:read"], sub=subject)
    statuses = [api.call("GET", f"/user/{USER}/state", token=token).status
                for _ in range(allowed)]
    assert statuses == [200] * allowed
    limited = api.call("GET", f"/user/{USER}/state", token=token)
    assert limited.status == 429
    assert limited.json()["type"] == "/problems/too-many-requests"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Another subject has its own budget.
    other = make_token(["users:read"], sub=subject + "-other")
    assert api.call("GET", f"/user/{USER}/state", token=other).status == 200
    # Public routes are never limited.
    assert api.call("GET", "/healthz").status == 200


@pytest.fixture(scope="module")
def limited_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    with served_api(tmp_path_factory.mktemp("limited"), RATE_LIMIT_PER_SUBJECT="3/minute") as api:
        yield api


def test_rate_limit_per_subject_in_memory_is_429_with_retry_after(limited_api: ServedApi) -> None:
    _assert_limited_after(limited_api, 3, "memory-svc")


@pytest.mark.redis
def test_rate_limit_counts_in_redis_when_configured(
    tmp_path: Path, local_redis: tuple[str, str]
) -> None:
    url, prefix = local_redis
    # The longest Redis wait the setting allows: at the default 0.1 s a loaded machine made a
    # count time out, and the limiter (fail-open) counted in memory, as it should — but then
    # this test could not see the count in Redis.
    with served_api(tmp_path, RATE_LIMIT_PER_SUBJECT="3/minute", REDIS_URL=url,
                    RATE_LIMIT_KEY_PREFIX=prefix, RATE_LIMIT_REDIS_TIMEOUT="10",
                    EVENTS_STREAM=f"{prefix}events") as api:
        _assert_limited_after(api, 3, "redis-svc")
    client = redis.Redis.from_url(url, socket_timeout=ASK, retry=no_retry())
    try:
        assert any(client.scan_iter(f"{prefix}*redis-svc*"))  # counted in Redis, not memory
    finally:
        client.close()


def test_rate_limit_counts_in_this_process_when_redis_does_not_answer(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                             RATE_LIMIT_PER_SUBJECT="1/minute")
    client = falcon.testing.TestClient(create_app(settings, FailingBridge(UserNotFound(USER))))
    headers = {"Authorization": f"Bearer {make_token(['users:read'], kid='k1')}"}
    statuses = [client.simulate_get(f"/user/{USER}/state", headers=headers).status_code
                for _ in range(3)]
    # The shared counter is unreachable: the limit holds in this process instead.
    assert statuses == [404, 429, 429]


def test_a_rate_limit_that_does_not_parse_is_a_config_error(make_settings: SettingsFactory
                                                            ) -> None:
    with pytest.raises(ConfigError, match="RATE_LIMIT_PER_SUBJECT"):
        make_settings(RATE_LIMIT_PER_SUBJECT="lots")


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri-too-long"),
    (b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
     + b"".join(b"X-H%d: v\r\n" % n for n in range(200)) + b"\r\n",
     431, "header-fields-too-large"),
    (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n",
     431, "header-fields-too-large"),
    (b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400,
     "invalid-request"),
    # The worker reads the whole request before the app sees it (`yabot.api.asgi`): the
    # broken chunk is found first, and the answer is gunicorn's 400.
    (b"GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
     "invalid-request"),
    (b"GET /<script> HTTP/9.9\r\n\r\n", 400, "invalid-request"),
    # Framings a proxy in front may read differently (request smuggling): refused, whichever
    # HTTP parser gunicorn runs (`yabot.serving` picks gunicorn_h1c's).
    (b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n{}", 400,
     "invalid-request"),
    (b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
     b"2\r\n{}\r\n0\r\n\r\n", 400, "invalid-request"),
    (b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "invalid-request"),
    (b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
     b"\r\n{}", 400, "invalid-request"),
    (b"GET /healthz HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n", 400, "invalid-request"),
])
def test_gunicorns_own_refusals_are_problem_json_that_echo_nothing(
    api: ServedApi, data: bytes, status: int, code: str,
) -> None:
    answered, headers, body = raw_request(api, data)
    assert answered == status, body
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body[:int(headers["content-length"])])
    assert (problem["type"], problem["status"]) == (f"/problems/{code}", status)
    assert b"<" not in body  # no HTML, and nothing of the request quoted back
