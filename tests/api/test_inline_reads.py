"""State reads a session's snapshot already answers run on the event loop
(`yabot.api.snapshot_reads`, `BufferedWsgi.inline`); everything else on a request thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

from tests.support.api import ServedApi, make_token
from tests.support.users import start_user
from tests.support.waiting import ASK
from yabot.api.asgi import BufferedWsgi
from yabot.api.snapshot_reads import PREFETCHED_STATE, StateReadsInline
from yabot.runtime import Runtime
from yabot.sessions.messages import GetState, SetPreferences
from yabot.views import Preferences


class WhereItRan:
    """A WSGI app that answers with the name of the thread it ran on."""

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [threading.current_thread().name.encode()]


def _thread_of(app: BufferedWsgi, path: str) -> str:
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"",
             "headers": [], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555), "root_path": ""}
    sent: list[Any] = []

    async def receive() -> Any:
        raise AssertionError("no body is read for a GET without Content-Length")

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body: bytes = sent[1]["body"]
    return body.decode()


def test_a_request_inline_accepts_runs_on_the_loop_and_the_rest_on_a_thread() -> None:
    app = BufferedWsgi(WhereItRan())
    app.configure(threads=1, max_body_bytes=16, read_timeout=60.0)
    try:
        app.inline = lambda environ: environ["PATH_INFO"] == "/fast"
        assert _thread_of(app, "/fast") == threading.current_thread().name  # the loop's
        assert _thread_of(app, "/slow").startswith("api-request")
        assert app.inline_answered == 1
        assert "yabot_http_inline_requests_total 1" in app.prometheus_text()
    finally:
        app.close()


def _environ(method: str, path: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path}


def test_only_a_state_read_with_a_fresh_snapshot_is_taken_inline(runtime: Runtime) -> None:
    inline = StateReadsInline(runtime.sessions, runtime.router)
    start_user(runtime, 1)
    # The session published after /start? Only once a GetState read the context.
    assert not inline(_environ("GET", "/user/1/state"))
    state = runtime.sessions.ask(1, GetState(), timeout=ASK)
    environ = _environ("GET", "/user/1/state")
    assert inline(environ)
    assert environ[PREFETCHED_STATE] == ("1", state)

    assert not inline(_environ("PUT", "/user/1/state"))
    assert not inline(_environ("GET", "/user/1/wallet"))
    assert not inline(_environ("GET", "/user/01/state"))
    assert not inline(_environ("GET", "/user/2/state"))  # no session: not started by this
    assert 2 not in runtime.sessions.live_keys()

    runtime.sessions.ask(1, SetPreferences(preferences=Preferences(language="es")),
                         timeout=ASK)  # a change drops the snapshot
    assert not inline(_environ("GET", "/user/1/state"))


def test_served_state_reads_go_inline_and_see_a_change_at_once(api: ServedApi) -> None:
    token = make_token()
    first = api.call("GET", "/user/101/state", token=token)
    again = api.call("GET", "/user/101/state", token=token)
    assert (first.status, again.status) == (200, 200)
    assert again.body == first.body
    metrics = api.call("GET", "/metrics", token=token).body.decode()
    inline = next(line for line in metrics.splitlines()
                  if line.startswith("yabot_http_inline_requests_total "))
    assert int(inline.split()[1]) >= 1

    changed = api.call("PUT", "/user/101/preferences", token=token,
                       json_body=b'{"language": "en", "notifications": false}')
    assert changed.status == 200
    after = api.call("GET", "/user/101/state", token=token)
    assert after.json()["preferences"] == {"language": "en", "notifications": False}
