"""State reads a session's snapshot already answers are answered at the ASGI layer
(`yabot.api.snapshot_reads`, `BufferedWsgi.shortcut`) with the app's own pieces; every
other request goes to the app, on a request thread, as before."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from tests.bot.logs import captured_logs
from tests.support.api import ServedApi, make_token
from tests.support.users import start_user
from tests.support.waiting import ASK
from yabot.api.asgi import BufferedWsgi
from yabot.api.auth import TokenVerifier, mint_token
from yabot.api.metrics import HttpMetrics
from yabot.api.ratelimit import RateLimit, WindowCounts
from yabot.api.resources import RenderedViews
from yabot.api.responses import UserStateResponse
from yabot.api.snapshot_reads import SnapshotStateReads
from yabot.runtime import Runtime
from yabot.sessions.messages import GET_STATE, GetState, SetPreferences
from yabot.settings import Settings
from yabot.views import Preferences


class WhereItRan:
    """A WSGI app that answers with the name of the thread it ran on."""

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [threading.current_thread().name.encode()]


def _scope(path: str, method: str = "GET", query: bytes = b"",
           headers: Iterable[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query,
            "headers": list(headers), "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555), "root_path": ""}


def _answer(app: BufferedWsgi, path: str) -> bytes:
    sent: list[Any] = []

    async def receive() -> Any:
        raise AssertionError("no body is read for a GET without Content-Length")

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(_scope(path), receive, send))
    body: bytes = sent[1]["body"]
    return body


def test_a_shortcut_answer_is_sent_without_the_app_and_the_rest_runs_on_a_thread() -> None:
    app = BufferedWsgi(WhereItRan())
    app.configure(threads=1, max_body_bytes=16, read_timeout=60.0)
    try:
        app.shortcut = lambda scope: ((200, [(b"content-type", b"text/plain")], b"short")
                                      if scope["path"] == "/fast" else None)
        assert _answer(app, "/fast") == b"short"
        assert _answer(app, "/slow").decode().startswith("api-request")
        assert app.inline_answered == 1
        assert "yabot_http_inline_requests_total 1" in app.prometheus_text()
    finally:
        app.close()


class Reads:
    """A `SnapshotStateReads` over a running runtime, with its pieces at hand."""

    def __init__(self, settings: Settings, runtime: Runtime, clock: list[float]) -> None:
        self.verifier = TokenVerifier(settings)
        self.metrics = HttpMetrics()
        self.rendered = RenderedViews()
        self.limit = RateLimit(settings, WindowCounts(lambda: clock[0]))
        self.reads = SnapshotStateReads(runtime.sessions, runtime.router, self.verifier,
                                        self.limit, self.metrics, self.rendered)

    def __call__(self, path: str, token: str | None, method: str = "GET", query: bytes = b"",
                 extra: Iterable[tuple[bytes, bytes]] = ()) -> Any:
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        return self.reads(_scope(path, method, query, [*headers, *extra]))


@pytest.fixture
def reads(make_settings: Any, runtime: Runtime) -> Reads:
    return Reads(make_settings(RATE_LIMIT_PER_SUBJECT="3/minute"), runtime, [1000.0])


@pytest.fixture
def token(settings: Settings, runtime: Runtime, reads: Reads) -> str:
    """A ``users:read`` token the verifier has seen, and user 1's state published."""
    token = mint_token(settings, "svc", ["users:read"])
    reads.verifier.verify(token)
    start_user(runtime, 1)
    runtime.sessions.ask(1, GetState(), timeout=ASK)
    return token


def test_a_plain_read_of_a_published_state_is_answered_as_the_app_would(
    settings: Settings, runtime: Runtime, reads: Reads,
) -> None:
    token = mint_token(settings, "svc", ["users:read"])
    start_user(runtime, 1)
    # /start published no state: only a GetState reads the context.
    reads.verifier.verify(token)
    assert reads("/user/1/state", token) is None
    state = runtime.sessions.ask(1, GetState(), timeout=ASK)

    status, headers, body = reads("/user/1/state", token, extra=[(b"x-request-id", b"trace-7")])
    assert status == 200
    assert dict(headers) == {b"content-type": b"application/json", b"x-request-id": b"trace-7"}
    assert json.loads(body) == UserStateResponse.of(state).model_dump(mode="json")
    published = runtime.sessions.published(1, GET_STATE)
    assert reads.rendered.get(published) == body  # the one body the app's resource serves
    metrics = reads.metrics.prometheus_text()
    assert ('yabot_http_requests_total{method="GET",route="/user/{user_id}/state",'
            'status="200"} 1') in metrics
    assert "yabot_http_requests_in_flight 0" in metrics

    fresh = dict(reads("/user/1/state", token)[1])[b"x-request-id"]
    assert len(fresh) == 32  # a new id when the caller sent none
    assert fresh != b"trace-7"

    runtime.sessions.ask(1, SetPreferences(preferences=Preferences(language="es")),
                         timeout=ASK)  # a change drops the snapshot: the app asks
    assert reads("/user/1/state", token) is None


def test_anything_but_the_plain_case_is_left_to_the_app(
    settings: Settings, runtime: Runtime, reads: Reads,
) -> None:
    token = mint_token(settings, "svc", ["users:read"])
    unverified = mint_token(settings, "svc", ["users:read"], ttl_seconds=600)
    no_scope = mint_token(settings, "svc", ["users:write"])
    for each in (token, no_scope):
        reads.verifier.verify(each)
    start_user(runtime, 1)
    runtime.sessions.ask(1, GetState(), timeout=ASK)
    assert reads("/user/1/state", token) is not None

    left_to_the_app = {
        "another method": reads("/user/1/state", token, method="PUT"),
        "another route": reads("/user/1/wallet", token),
        "a query string": reads("/user/1/state", token, query=b"x=1"),
        "a leading zero": reads("/user/01/state", token),
        "an id past 2^53": reads(f"/user/{2**53}/state", token),
        "a body": reads("/user/1/state", token, extra=[(b"content-length", b"0")]),
        "a chunked body": reads("/user/1/state", token,
                                extra=[(b"transfer-encoding", b"chunked")]),
        "two tokens": reads("/user/1/state", token,
                            extra=[(b"authorization", f"Bearer {token}".encode())]),
        "two request ids": reads("/user/1/state", token,
                                 extra=[(b"x-request-id", b"a"), (b"x-request-id", b"b")]),
        "no token": reads("/user/1/state", None),
        "not a bearer token": reads("/user/1/state", None,
                                    extra=[(b"authorization", f"Basic {token}".encode())]),
        "a token not verified yet": reads("/user/1/state", unverified),
        "a token without the scope": reads("/user/1/state", no_scope),
        "a user without a session": reads("/user/2/state", token),
    }
    assert {name for name, answer in left_to_the_app.items() if answer is not None} == set()
    assert 2 not in runtime.sessions.live_keys()  # nothing was started
    counted = [line for line in reads.metrics.prometheus_text().splitlines()
               if line.startswith("yabot_http_requests_total{")]
    assert counted == ['yabot_http_requests_total{method="GET",route="/user/{user_id}/state",'
                       'status="200"} 1']  # only the one answer above


def test_a_read_the_rate_limit_refuses_is_left_to_the_app_and_counts_nothing(
    reads: Reads, token: str,
) -> None:
    answers = [reads("/user/1/state", token) for _ in range(4)]  # the limit is 3/minute
    assert [a is not None for a in answers] == [True, True, True, False]
    # The refusal counted nothing: the app's own take refuses the same way (429).
    assert reads.limit.take("svc") is not None
    assert ('yabot_http_requests_total{method="GET",route="/user/{user_id}/state",'
            'status="200"} 3') in reads.metrics.prometheus_text()


def test_the_request_line_is_logged_with_the_callers_correlation_id(
    reads: Reads, token: str,
) -> None:
    with captured_logs() as logs:
        assert reads("/user/1/state", token, extra=[(b"x-request-id", b"trace-9")])
    [line] = [entry for entry in logs if entry["event"] == "request"]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/user/1/state", "200 OK")
    assert line["correlation_id"] == "trace-9"
    assert line["ms"] >= 0


def test_served_the_shortcut_answers_what_the_app_answers(api: ServedApi) -> None:
    """The first read with a new token goes through the app (which verifies the token); the
    next one is answered from the snapshot: the same answer, byte for byte."""
    token = make_token(sub="shortcut-check")
    answers = [api.call("GET", "/user/102/state", token=token,
                        headers={"X-Request-Id": "same-id"}) for _ in range(3)]
    by_app, _, shortcut = answers
    assert {a.status for a in answers} == {200}
    assert shortcut.body == by_app.body
    ignored = {"date"}
    assert ({k: v for k, v in shortcut.headers.items() if k not in ignored}
            == {k: v for k, v in by_app.headers.items() if k not in ignored})
    assert shortcut.headers["x-request-id"] == "same-id"


def test_served_state_reads_take_the_shortcut_and_see_a_change_at_once(
    api: ServedApi,
) -> None:
    token = make_token()

    def inline_count() -> int:
        metrics = api.call("GET", "/metrics", token=token).body.decode()
        return int(next(line for line in metrics.splitlines()
                        if line.startswith("yabot_http_inline_requests_total ")).split()[1])

    first = api.call("GET", "/user/101/state", token=token)
    before = inline_count()
    again = api.call("GET", "/user/101/state", token=token)
    assert (first.status, again.status) == (200, 200)
    assert again.body == first.body
    assert inline_count() == before + 1

    changed = api.call("PUT", "/user/101/preferences", token=token,
                       json_body=b'{"language": "en", "notifications": false}')
    assert changed.status == 200
    after = api.call("GET", "/user/101/state", token=token)
    assert after.json()["preferences"] == {"language": "en", "notifications": False}
