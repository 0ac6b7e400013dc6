"""Health, readiness, metrics and the OpenAPI document (real gunicorn), and the mapping of
runtime failures to 503/504 (in-process, with a bridge that fails on purpose)."""

from __future__ import annotations

import re
import signal
import threading
from typing import Any

import falcon
import falcon.inspect
import falcon.testing
import pytest

from actors import ActorDead, AskTimeout, Overloaded
from tests.support.api import USERS, FailingBridge, ServedApi, make_token
from yabot.api.app import create_app
from yabot.api.bridge import ApiBridge
from yabot.api.openapi import openapi_document
from yabot.bot.runner import BotRunner
from yabot.bot.webhook import SECRET_HEADER, WEBHOOK_PATH, TelegramWebhook
from yabot.errors import StoreUnavailable, TimedOut
from yabot.health import ComponentHealth, HealthRegistry, HealthStatus
from yabot.serving import WorkerApp, drain_on
from yabot.settings import Settings

USER = USERS[0]


def test_healthz_is_health_json(api: ServedApi) -> None:
    response = api.call("GET", "/healthz")
    assert response.status == 200
    assert response.headers["content-type"] == "application/health+json"
    assert response.json() == {"status": "pass"}


def test_readyz_reports_every_component(api: ServedApi) -> None:
    response = api.call("GET", "/readyz")
    assert response.status == 200
    assert response.headers["content-type"] == "application/health+json"
    body = response.json()
    assert body["status"] in {"pass", "warn"}
    assert {"sql", "events", "actors"} <= set(body["checks"])
    assert body["checks"]["sql"][0]["status"] == "pass"
    assert body["checks"]["sql"][0]["observedUnit"] == "ms"
    assert body["checks"]["actors"][0]["status"] == "pass"


def test_metrics_count_requests_by_route_template_and_status(api: ServedApi) -> None:
    token = make_token(["users:read"])
    api.call("GET", f"/user/{USER}/state", token=token)
    api.call("GET", "/user/999999/state", token=token)
    api.call("GET", "/user/999998/state", token=token)
    response = api.call("GET", "/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.body.decode()

    def count(status: int) -> int:
        match = re.search(
            rf'yabot_http_requests_total{{method="GET",route="/user/{{user_id}}/state",'
            rf'status="{status}"}} (\d+)', text)
        assert match, text
        return int(match.group(1))

    assert count(200) >= 1
    assert count(404) >= 2
    assert "/user/999999" not in text  # labels are templates, never raw paths
    assert 'yabot_http_request_duration_seconds_bucket{method="GET",' \
           'route="/user/{user_id}/state",le="+Inf"}' in text
    assert "yabot_http_requests_in_flight 1" in text  # this request
    assert 'actors_handled_total{actor_class="UserSession"}' in text  # actor metrics
    assert "# TYPE yabot_events_total counter" in text  # event counters


def test_openapi_documents_exactly_the_routes_of_the_app(api: ServedApi, settings: Settings
                                                         ) -> None:
    served = api.call("GET", "/openapi.json")
    assert served.status == 200
    document = served.json()
    assert document == openapi_document()
    assert document["openapi"].startswith("3.")
    _assert_documents_exactly(document, create_app(settings, ApiBridge.__new__(ApiBridge)))


class HelloWorld:
    """An extra route that does not describe itself (like the benchmark's)."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"hello": "world"}


def test_openapi_documents_the_extra_routes_the_app_serves(settings: Settings) -> None:
    webhook = TelegramWebhook(BotRunner.__new__(BotRunner), "secret", 4096)
    app = create_app(settings, ApiBridge.__new__(ApiBridge),
                     {WEBHOOK_PATH: webhook, "/hello": HelloWorld()})
    document = falcon.testing.TestClient(app).simulate_get("/openapi.json").json
    _assert_documents_exactly(document, app)
    assert document["paths"][WEBHOOK_PATH] == TelegramWebhook.openapi
    operation = document["paths"][WEBHOOK_PATH]["post"]
    assert [p["name"] for p in operation["parameters"]] == [SECRET_HEADER]
    assert {"200", "400", "401", "413", "503"} <= set(operation["responses"])
    assert document["paths"]["/hello"]["get"]["summary"] == "Not described"
    for response in operation["responses"].values():  # every reference resolves
        ref = response["content"].get("application/problem+json", {}).get("schema", {})
        if "$ref" in ref:
            assert ref["$ref"].rsplit("/", 1)[-1] in document["components"]["schemas"]


def _assert_documents_exactly(document: dict[str, Any], app: falcon.App[Any, Any]) -> None:
    """``document`` has an operation for every (path, method) ``app`` routes, and no other,
    each with the bearer scope its resource requires (none for a public one)."""
    documented = {(path, method.upper()) for path, ops in document["paths"].items()
                  for method in ops}
    routed = {
        (route.path, method.method)
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }
    assert documented == routed
    for path, ops in document["paths"].items():
        resource = _resource_of(app, path)
        for method, operation in ops.items():
            security = operation.get("security", document["security"])
            scopes = [s for requirement in security for s in requirement.get("bearerAuth", [])]
            if getattr(resource, "public", False):
                assert security == [], (path, method)
            expected = dict(getattr(resource, "scopes", {})).get(method.upper())
            assert scopes == ([expected] if expected else []), (path, method)


def _resource_of(app: falcon.App[Any, Any], path: str) -> object:
    found = app._router.find(path.replace("{user_id}", "1").replace("{fragment_id}", "f"))
    assert found is not None, path
    resource: object = found[0]
    return resource


# ---- failures of the runtime, in-process ---------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "problem"),
    [
        (StoreUnavailable("sql circuit open"), 503, "store-unavailable"),
        (AskTimeout("no reply"), 504, "timeout"),
        (TimedOut("deadline"), 504, "timeout"),
        (Overloaded("no room"), 503, "unavailable"),
        (ActorDead("gone"), 503, "unavailable"),
        (RuntimeError("secret=hunter2 at /srv/app.py line 3"), 500, "internal"),
    ],
)
def test_runtime_failures_map_to_status_without_leaking(
    settings: Settings, error: Exception, status: int, problem: str
) -> None:
    client = falcon.testing.TestClient(create_app(settings, FailingBridge(error)))
    result = client.simulate_get(f"/user/{USER}/state",
                                 headers={"Authorization": f"Bearer {make_token(kid='k1')}"})
    assert result.status_code == status
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json["type"] == f"/problems/{problem}"
    assert "hunter2" not in result.text
    assert "Traceback" not in result.text
    if status == 503:
        assert result.headers["retry-after"] == "1"


def test_readyz_fails_when_a_check_fails_and_at_the_start_of_shutdown(settings: Settings
                                                                       ) -> None:
    registry = HealthRegistry()
    registry.register("sql", lambda: ComponentHealth(name="sql", status=HealthStatus.PASS))
    draining = threading.Event()
    client = falcon.testing.TestClient(
        create_app(settings, FailingBridge(RuntimeError()), health=registry, draining=draining))
    assert client.simulate_get("/readyz").status_code == 200

    registry.register("docs", lambda: ComponentHealth(name="docs", status=HealthStatus.FAIL,
                                                      output="circuit open"))
    failing = client.simulate_get("/readyz")
    assert failing.status_code == 503
    assert failing.json["status"] == "fail"
    assert failing.json["checks"]["docs"][0]["output"] == "circuit open"
    registry.unregister("docs")

    draining.set()
    shutting_down = client.simulate_get("/readyz")
    assert shutting_down.status_code == 503
    assert shutting_down.json["checks"]["shutdown"][0]["status"] == "fail"
    assert client.simulate_get("/healthz").status_code == 200  # still alive


def test_sigterm_handler_starts_draining_then_runs_gunicorns_handler() -> None:
    app = WorkerApp()
    calls: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        handler = drain_on(signal.SIGUSR2, app)
        handler(signal.SIGUSR2, None)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert app.draining.is_set()
    assert calls == [signal.SIGUSR2]
