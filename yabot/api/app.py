"""create_app: the one place the Falcon application is wired."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import falcon

from yabot.api.auth import RequireToken, TokenVerifier
from yabot.api.bodies import BodyLimits
from yabot.api.bridge import ApiBridge
from yabot.api.health import HEALTH_JSON, Readiness
from yabot.api.metrics import HttpMetrics, MeasureRequests, MetricsResource
from yabot.api.openapi import OpenApiResource, extra_path_items
from yabot.api.policy import check_route_policy
from yabot.api.problems import PROBLEM_JSON, handle_error, serialize_problem
from yabot.api.ratelimit import RateLimit
from yabot.api.request_context import RequestContext
from yabot.api.resources import (
    STATE_ROUTE,
    BesitosResource,
    FragmentResource,
    GiftsResource,
    Liveness,
    PreferencesResource,
    PurchasesResource,
    RenderedViews,
    SubscriptionResource,
    UserResource,
    UserStateResource,
)
from yabot.api.stats import DailyFiguresSource, DailyStatsResource
from yabot.api.strict import RefuseRepeatedParameters
from yabot.health import HealthRegistry
from yabot.settings import Settings


def create_app(
    settings: Settings,
    bridge: ApiBridge,
    extra_routes: Mapping[str, object] | None = None,
    *,
    health: HealthRegistry | None = None,
    draining: threading.Event | None = None,
    metrics: HttpMetrics | None = None,
    metrics_sources: Sequence[Callable[[], str]] = (),
    rate_limit: RateLimit | None = None,
    verifier: TokenVerifier | None = None,
    rendered_states: RenderedViews | None = None,
    daily_stats: DailyFiguresSource | None = None,
) -> falcon.App[Any, Any]:
    """The API; ``extra_routes`` are resources other parts add (the Telegram webhook),
    documented in ``/openapi.json`` too (`yabot.api.openapi.extra_path_items`). Every
    resource must declare its `RoutePolicy`: `ConfigError` otherwise (nothing starts).

    ``health`` feeds ``/readyz`` (no checks: ready), ``draining`` makes it fail (set at the
    start of shutdown), ``metrics_sources`` add Prometheus text to ``/metrics`` after the
    HTTP metrics (the actors' and the events' counters). ``rate_limit`` replaces the one
    the settings describe (tests give one on a manual clock); ``verifier`` and
    ``rendered_states`` are shared with `yabot.api.snapshot_reads` when given (the token
    cache, the state route's bodies); ``daily_stats`` serves ``/stats/daily``.
    """
    http_metrics = metrics or HttpMetrics()
    middleware: list[Any] = [
        RequestContext(),
        MeasureRequests(http_metrics),
        RequireToken(verifier or TokenVerifier(settings)),
        rate_limit or (RateLimit(settings) if settings.rate_limit.enabled else None),
        BodyLimits(settings.api.max_body_bytes),
        RefuseRepeatedParameters(),
    ]
    app: falcon.App[Any, Any] = falcon.App(middleware=[m for m in middleware if m is not None])
    app.resp_options.xml_error_serialization = False
    json_handler = falcon.media.JSONHandler()
    app.resp_options.media_handlers[HEALTH_JSON] = json_handler
    app.resp_options.media_handlers[PROBLEM_JSON] = json_handler
    app.set_error_serializer(serialize_problem)
    app.add_error_handler(Exception, handle_error)
    registry = health or HealthRegistry()
    extras = dict(extra_routes or {})
    if daily_stats is not None:
        extras["/stats/daily"] = DailyStatsResource(daily_stats)
    for path, resource in extras.items():
        check_route_policy(path, resource)  # before they are documented
    routes: dict[str, object] = {
        "/healthz": Liveness(),
        "/readyz": Readiness(registry.check_all, draining or threading.Event()),
        "/metrics": MetricsResource([http_metrics.prometheus_text, *metrics_sources]),
        "/openapi.json": OpenApiResource(extra_path_items(extras)),
        "/user/{user_id}": UserResource(bridge),
        STATE_ROUTE: UserStateResource(bridge, rendered_states),
        "/user/{user_id}/purchases": PurchasesResource(bridge),
        "/user/{user_id}/gifts": GiftsResource(bridge),
        "/user/{user_id}/preferences": PreferencesResource(bridge),
        "/user/{user_id}/besitos": BesitosResource(bridge),
        "/user/{user_id}/subscription": SubscriptionResource(bridge),
        "/narrative/{fragment_id}": FragmentResource(bridge),
        **extras,
    }
    for path, resource in routes.items():
        check_route_policy(path, resource)  # fails closed: no start with an unguarded route
        app.add_route(path, resource)
    return app
