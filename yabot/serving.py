"""Serving the API with gunicorn: one gthread worker that owns the actor tree.

The tree starts in ``post_worker_init`` (inside the worker, after fork) and stops in
``worker_exit``. Nothing starts at import time, so ``preload_app`` cannot strand actors in the
master. `config/gunicorn.conf.py` and `yabot run` both take their settings from
`gunicorn_config`, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from actors import metrics as actor_metrics
from yabot.api.app import create_app
from yabot.api.bridge import ApiBridge
from yabot.api.problems import PROBLEM_JSON
from yabot.events.counters import event_counters
from yabot.health import ComponentHealth, HealthStatus
from yabot.logs import configure_logging
from yabot.runtime import Runtime
from yabot.settings import Settings, load_settings

log = structlog.get_logger("yabot.serving")

StartResponse = Callable[..., Any]

_NOT_READY = b'{"type":"/problems/unavailable","title":"Service Unavailable","status":503}'


class WorkerApp:
    """The WSGI entry point. Answers 503 until the worker's runtime is bound.

    ``draining`` is set at the start of shutdown (SIGTERM, before in-flight requests finish):
    ``/readyz`` then fails while the requests already accepted complete.
    """

    def __init__(self) -> None:
        self._app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]] | None = None
        self.runtime: Runtime | None = None
        self.draining = threading.Event()
        #: Routes added to the API besides the runtime's (the benchmark's hello-world).
        self.extra_routes: dict[str, object] = {}

    def bind(self, settings: Settings, runtime: Runtime) -> None:
        self.runtime = runtime
        self.draining.clear()
        runtime.health.register("actors", lambda: _actor_tree_health(runtime))
        bridge = ApiBridge(runtime.sessions, settings.actors.ask_timeout, runtime.router)
        self._app = create_app(
            settings, bridge, {**runtime.http_routes(), **self.extra_routes},
            health=runtime.health, draining=self.draining,
            metrics_sources=[actor_metrics.prometheus_text, event_counters.prometheus_text,
                             runtime.cluster_metrics],
        )

    def begin_shutdown(self) -> None:
        """Readiness fails from now on; requests keep being answered."""
        if not self.draining.is_set():
            self.draining.set()
            log.info("shutting down: readiness fails, in-flight requests finish")

    def shutdown(self) -> None:
        self.begin_shutdown()
        runtime, self.runtime, self._app = self.runtime, None, None
        if runtime is not None:
            runtime.stop()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        app = self._app
        if app is None:
            start_response("503 Service Unavailable", [("Content-Type", PROBLEM_JSON)])
            return [_NOT_READY]
        return app(environ, start_response)


def _actor_tree_health(runtime: Runtime) -> ComponentHealth:
    if runtime.running:
        return ComponentHealth(name="actors", status=HealthStatus.PASS,
                               details={"sessions": len(runtime.sessions)})
    return ComponentHealth(name="actors", status=HealthStatus.FAIL,
                           output="the actor tree is not running")


application = WorkerApp()


def drain_on(signum: int, app: WorkerApp) -> Callable[[int, Any], None]:
    """A handler for ``signum`` that starts draining ``app``, then runs the handler gunicorn
    installed (which stops accepting and lets in-flight requests finish)."""
    previous = signal.getsignal(signum)

    def handler(received: int, frame: Any) -> None:
        app.begin_shutdown()
        if callable(previous):
            previous(received, frame)

    return handler


def post_worker_init(worker: Any) -> None:
    settings = load_settings()
    configure_logging(settings)
    workers = int(getattr(worker.cfg, "workers", 1) or 1)
    if workers > 1 and settings.redis.url is None:
        # Each worker owns partitions through leases in Redis; without it every worker
        # would read the same SQL intake and act for every user (README "Scaling out").
        log.critical("several workers need REDIS_URL (partition leases); run one worker "
                     "without it", workers=workers)
        raise SystemExit(WORKER_GAVE_UP)
    runtime = Runtime(settings, on_fatal=lambda: setattr(worker, "alive", False))
    runtime.start()
    application.bind(settings, runtime)
    # gunicorn installed its own handlers in init_signals, before this hook runs.
    signal.signal(signal.SIGTERM, drain_on(signal.SIGTERM, application))
    log.info("worker ready", pid=os.getpid(), bind=f"{settings.api.host}:{settings.api.port}")


# A worker exiting with gunicorn's WORKER_BOOT_ERROR makes the arbiter halt with that code
# instead of forking a fresh worker: the process ends non-zero and the operator's supervisor
# (systemd, the platform running the Procfile) sees the failure.
WORKER_GAVE_UP = 3


def worker_exit(server: Any, worker: Any) -> None:
    if os.getpid() != worker.pid:  # the hook also runs in the master for dead workers
        return
    runtime = application.runtime
    application.shutdown()
    if runtime is not None and runtime.failed.is_set():
        log.critical("worker exits because its actor tree gave up", exit_code=WORKER_GAVE_UP)
        raise SystemExit(WORKER_GAVE_UP)  # replaces gunicorn's own exit(0) of the worker


def gunicorn_config(settings: Settings | None = None) -> dict[str, Any]:
    """gunicorn settings derived from ours; the hooks above included."""
    settings = settings or load_settings()
    return {
        "wsgi_app": "yabot.serving:application",
        "bind": [f"{settings.api.host}:{settings.api.port}"],
        "workers": 1,  # per-user ordering holds within one process (see README)
        "worker_class": "gthread",
        "threads": settings.api.threads,
        "graceful_timeout": settings.api.graceful_timeout,
        "timeout": 60,
        "preload_app": False,
        "control_socket_disable": True,  # gunicorn >= 25.1 shares one socket path per user
        "accesslog": None,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
    }


def serve(settings: Settings) -> None:
    """Run gunicorn in this process with `gunicorn_config` (what `yabot run` does); returns
    when gunicorn exits."""
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    options = gunicorn_config(settings)

    class Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
        def load_config(self) -> None:
            for key, value in options.items():
                if key != "wsgi_app":
                    self.cfg.set(key, value)

        def load(self) -> WorkerApp:
            return application

    Server().run()
