"""Serving the API with gunicorn: one asyncio (``asgi``) worker that owns the actor tree.

The event loop reads every connection; a request whose body is in runs in the Falcon WSGI app
on one of ``API_THREADS`` threads (`yabot.api.asgi.BufferedWsgi`), so slow clients hold no
thread (README "Serving").

The tree starts in ``post_worker_init`` (inside the worker, after fork) and stops in
``worker_exit``. Nothing starts at import time, so ``preload_app`` cannot strand actors in the
master. `config/gunicorn.conf.py` and `yabot run` both take their settings from
`gunicorn_config`, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import ctypes
import mmap
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog

from actors import metrics as actor_metrics
from yabot.api import framing
from yabot.api.app import create_app
from yabot.api.asgi import BufferedWsgi
from yabot.api.auth import TokenVerifier
from yabot.api.bridge import ApiBridge
from yabot.api.metrics import HttpMetrics
from yabot.api.problems import PROBLEM_JSON
from yabot.api.ratelimit import RateLimit
from yabot.api.resources import RenderedViews
from yabot.api.snapshot_reads import SnapshotStateReads
from yabot.bot.counters import telegram_counters
from yabot.events.counters import event_counters
from yabot.health import ComponentHealth, HealthStatus
from yabot.logs import configure_logging, gunicorn_logconfig
from yabot.notifications.counters import notification_counters
from yabot.runtime import Runtime
from yabot.scheduler.scheduler import scheduler_metrics
from yabot.settings import Settings, load_settings
from yabot.startup import ExitCode, diagnose

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
        self.state_reads: SnapshotStateReads | None = None
        self.draining = threading.Event()
        #: Routes added to the API besides the runtime's (the benchmark's hello-world).
        self.extra_routes: dict[str, object] = {}
        #: Prometheus text added to ``/metrics`` besides the runtime's (the server's own).
        self.extra_metrics: list[Callable[[], str]] = []

    def bind(self, settings: Settings, runtime: Runtime) -> None:
        self.runtime = runtime
        self.draining.clear()
        runtime.health.register("actors", lambda: _actor_tree_health(runtime))
        bridge = ApiBridge(runtime.sessions, settings.actors.ask_timeout, runtime.router)
        metrics, verifier, rendered = HttpMetrics(), TokenVerifier(settings), RenderedViews()
        rate_limit = RateLimit(settings) if settings.rate_limit.enabled else None
        self._app = create_app(
            settings, bridge, {**runtime.http_routes(), **self.extra_routes},
            health=runtime.health, draining=self.draining, metrics=metrics,
            rate_limit=rate_limit, verifier=verifier, rendered_states=rendered,
            metrics_sources=[actor_metrics.prometheus_text, event_counters.prometheus_text,
                             telegram_counters.prometheus_text,
                             scheduler_metrics.prometheus_text,
                             notification_counters.prometheus_text, runtime.cluster_metrics,
                             *self.extra_metrics],
            daily_stats=runtime.daily_stats,
        )
        #: What `BufferedWsgi` may answer without the app: only with the rate limit in this
        #: process, as the shared one is a Redis round trip, which must not run on the loop.
        self.state_reads = (
            SnapshotStateReads(runtime.sessions, runtime.router, verifier, rate_limit, metrics,
                               rendered) if settings.redis.url is None else None)

    def begin_shutdown(self) -> None:
        """Readiness fails from now on; requests keep being answered."""
        if not self.draining.is_set():
            self.draining.set()
            log.info("shutting down: readiness fails, in-flight requests finish")

    def shutdown(self) -> None:
        self.begin_shutdown()
        runtime, self.runtime, self._app = self.runtime, None, None
        self.state_reads = None
        if runtime is not None:
            runtime.stop()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        app = self._app
        if app is None:  # not bound yet, or shut down: come back in a moment
            start_response("503 Service Unavailable",
                           [("Content-Type", PROBLEM_JSON), ("Retry-After", "1")])
            return [_NOT_READY]
        return app(environ, start_response)


def _actor_tree_health(runtime: Runtime) -> ComponentHealth:
    if runtime.running:
        # A quarantined session is one user's problem, contained: warn (still ready).
        sessions = runtime.sessions.status()
        return ComponentHealth(
            name="actors", status=HealthStatus.WARN if sessions.quarantined else HealthStatus.PASS,
            output=(f"{sessions.quarantined} user session(s) quarantined after failing "
                    "repeatedly") if sessions.quarantined else None,
            details={"sessions": sessions.live, "quarantined": sessions.quarantined,
                     "parked": sessions.parked, "mailbox_depth": sessions.mailbox_depth,
                     "workers": sessions.workers})
    return ComponentHealth(name="actors", status=HealthStatus.FAIL,
                           output="the actor tree is not running")


application = WorkerApp()
#: What gunicorn's ``asgi`` worker serves: `application`, each request read whole first.
asgi_application = BufferedWsgi(application)
application.extra_metrics.append(asgi_application.prometheus_text)


def drain_on(signum: int, app: WorkerApp) -> Callable[[int, Any], None]:
    """A handler for ``signum`` that starts draining ``app``, then runs the handler gunicorn
    installed (which stops accepting and lets in-flight requests finish)."""
    previous = signal.getsignal(signum)

    def handler(received: int, frame: Any) -> None:
        app.begin_shutdown()
        if callable(previous):
            previous(received, frame)

    return handler


def _drain_then(stop: Callable[[], None]) -> None:
    """SIGTERM in the asgi worker (a loop callback): readiness fails, then gunicorn's own
    handler stops accepting and lets in-flight requests finish."""
    application.begin_shutdown()
    stop()


#: The signal the kernel sends a worker when its master dies (`watch_master`).
MASTER_DIED = signal.SIGUSR2
#: How long an orphaned worker lets requests already in flight finish (seconds): nobody will
#: restart it and a new master is waiting for the port, so it does not wait its full grace.
ORPHAN_GRACE = 2.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def watch_master(worker: Any, app: WorkerApp) -> bool:
    """Have the kernel signal this worker (`MASTER_DIED`) when its master dies, and then
    drain at once: readiness fails, the worker stops accepting, in-flight requests get
    `ORPHAN_GRACE` seconds (answered with ``Connection: close``), then it exits and frees the
    port for the next master. gunicorn alone notices a dead master only by polling and then
    keeps serving its full ``graceful_timeout`` with readiness still passing. Linux only
    (``prctl(PR_SET_PDEATHSIG)``); False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False

    def orphaned(received: int, frame: Any) -> None:
        log.warning("the gunicorn master died: draining and exiting", pid=os.getpid())
        app.begin_shutdown()
        worker.cfg.set("graceful_timeout", min(ORPHAN_GRACE, worker.cfg.graceful_timeout))
        worker.alive = False  # gunicorn's loop stops accepting; responses close

    signal.signal(MASTER_DIED, orphaned)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(MASTER_DIED), 0, 0, 0) != 0:
        log.warning("cannot watch the master", errno=ctypes.get_errno())
        return False
    if os.getppid() != worker.ppid:  # it died before the watch was set
        os.kill(os.getpid(), MASTER_DIED)
    return True


#: The exit code a worker asks the master to exit with, in memory shared across fork (made
#: at import, in the master). A worker that cannot boot must exit with gunicorn's
#: WORKER_BOOT_ERROR, the only code that halts the master (any other makes it fork a new
#: worker, forever); `on_exit` then turns the master's exit into this code.
_requested_exit = mmap.mmap(-1, 1)

#: The settings the master read (before gunicorn changed directory): workers use them, so a
#: worker reads no `.env` from elsewhere.
_master_settings: Settings | None = None


def requested_exit_code() -> int | None:
    """The exit code a worker asked for, if any."""
    return _requested_exit[0] or None


def post_worker_init(worker: Any) -> None:
    settings = _master_settings or load_settings()
    # gunicorn's own 400/414/431 as problem JSON; a request head's read deadline.
    framing.install(header_timeout=settings.api.read_timeout)
    configure_logging(settings)
    if _workers_need_redis(int(getattr(worker.cfg, "workers", 1) or 1), settings):
        # Normally refused by the master already (`on_starting`); this is the backstop.
        if not _requested_exit[0]:
            _requested_exit[0] = int(ExitCode.CONFIGURATION)
        raise SystemExit(WORKER_BOOT_ERROR)
    runtime = Runtime(settings, on_fatal=lambda: setattr(worker, "alive", False))
    try:
        runtime.start(wait_for_bot=False)  # /healthz answers while aiogram loads
    except Exception as exc:
        _refuse_to_boot(exc, runtime)
    application.bind(settings, runtime)
    asgi_application.configure(settings.api.threads, _largest_body(settings),
                               settings.api.read_timeout)
    asgi_application.shortcut = application.state_reads
    # gunicorn installed its own handlers in init_signals, before this hook runs.
    loop = getattr(worker, "loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):  # the asgi worker: its loop's handler
        loop.add_signal_handler(signal.SIGTERM, _drain_then, worker.handle_exit_signal)
    else:
        signal.signal(signal.SIGTERM, drain_on(signal.SIGTERM, application))
    watch_master(worker, application)
    host, port = settings.bind
    log.info("worker ready", pid=os.getpid(), bind=f"{host}:{port}",
             package=str(Path(__file__).parent))


def _largest_body(settings: Settings) -> int:
    """The largest body any route accepts (the webhook's limit is its own): larger ones are
    refused by the app from their headers, without being read."""
    return max(settings.api.max_body_bytes, settings.bot.webhook_max_body)


def _refuse_to_boot(error: Exception, runtime: Runtime) -> None:
    """One line saying what failed and what to do (the traceback at debug level), the exit
    code for the master, then gunicorn's boot-error exit."""
    runtime.stop()
    failure = diagnose(error)
    if failure is None:
        log.critical("worker failed to start", exc_info=error)
        code = ExitCode.GAVE_UP
    else:
        log.critical(failure.line(), exit_code=int(failure.exit_code))
        log.debug("start-up failure in detail", exc_info=error)
        code = failure.exit_code
    if not _requested_exit[0]:
        _requested_exit[0] = int(code)
    raise SystemExit(WORKER_BOOT_ERROR)


def on_exit(server: Any) -> None:
    """In the master, last: exit with the code a worker asked for instead of gunicorn's."""
    code = requested_exit_code()
    if code is not None:
        raise SystemExit(code)


class _QuietAfterBootFailure:
    """Drops gunicorn's own lines about a worker that refused to boot ("exited with code 3",
    "Worker failed to boot"): the worker's line already said why, with the real exit code."""

    _NOISE = ("Worker (pid:%s) exited with code", "Reason: %s", "Shutting down: %s",
              "Exception in worker process")

    def filter(self, record: Any) -> bool:
        if requested_exit_code() is None:
            return True
        return not str(record.msg).startswith(self._NOISE)


def _workers_need_redis(workers: int, settings: Settings) -> bool:
    """Whether several workers are asked for without ``REDIS_URL`` (logged once, critical).
    Each worker owns partitions through leases in Redis; without it every worker would read
    the same SQL intake and act for every user (README "Scaling out")."""
    if workers > 1 and settings.redis.url is None:
        log.critical("several workers need REDIS_URL (partition leases); run one worker "
                     "without it", workers=workers, exit_code=int(ExitCode.CONFIGURATION))
        return True
    return False


def on_starting(server: Any) -> None:
    server.log.error_log.addFilter(_QuietAfterBootFailure())
    # Refused here, in the master, before any worker forks: several workers refusing to boot
    # at once make gunicorn's halt itself fail (a second HaltServer, exit 1).
    settings = _master_settings or load_settings()
    workers = int(getattr(server.cfg, "workers", 1) or 1)
    if _workers_need_redis(workers, settings):
        raise SystemExit(int(ExitCode.CONFIGURATION))
    if workers > 1:
        # Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads
        # new connections over them. On gunicorn's one shared socket, the asyncio worker that
        # wakes first accepts every connection waiting (up to 100 at once): keep-alive
        # connections opened together (Telegram's webhook, a proxy's pool) all landed on one
        # worker — 32 of 32 with three workers, 16 of 16 in 2 runs of 3 with two.
        server.cfg.set("reuse_port", True)


# A worker exiting with gunicorn's WORKER_BOOT_ERROR makes the arbiter halt with that code
# instead of forking a fresh worker: the process ends non-zero and the operator's supervisor
# (systemd, the platform running the Procfile) sees the failure.
WORKER_GAVE_UP = 3
WORKER_BOOT_ERROR = 3  # gunicorn's Arbiter.WORKER_BOOT_ERROR


def worker_exit(server: Any, worker: Any) -> None:
    if os.getpid() != worker.pid:  # the hook also runs in the master for dead workers
        return
    runtime = application.runtime
    if runtime is None:  # the worker never booted: nothing to drain or stop
        return
    application.shutdown()
    asgi_application.close()
    if runtime is not None and runtime.failed.is_set():
        log.critical("worker exits because its actor tree gave up", exit_code=WORKER_GAVE_UP)
        raise SystemExit(WORKER_GAVE_UP)  # replaces gunicorn's own exit(0) of the worker


def gunicorn_config(settings: Settings | None = None) -> dict[str, Any]:
    """gunicorn settings derived from ours; the hooks above included.

    ``chdir`` is the folder holding the `yabot` package that runs (site-packages, once
    installed): gunicorn puts its working directory first on ``sys.path``, and a checkout there
    would otherwise shadow the installed package in the workers.
    """
    global _master_settings
    settings = settings or load_settings()
    _master_settings = settings
    host, port = settings.bind
    logconfig = gunicorn_logconfig(settings)
    return {
        **({"logconfig_dict": logconfig} if logconfig is not None else {}),
        "wsgi_app": "yabot.serving:asgi_application",
        "bind": [f"{host}:{port}"],
        "chdir": str(Path(__file__).resolve().parents[1]),
        "workers": 1,  # `-w N` on the command line needs REDIS_URL (README "Scaling out")
        # Slow clients cost the event loop a socket each, not a thread (`yabot.api.asgi`).
        "worker_class": "asgi",
        "asgi_loop": "asyncio",
        # gunicorn_h1c (a dependency), or the worker refuses to start: 18% less CPU per
        # request than the Python parser (setup.cfg).
        "http_parser": "fast",
        "asgi_lifespan": "off",  # the actor tree starts in post_worker_init
        "graceful_timeout": settings.api.graceful_timeout,
        "timeout": settings.api.worker_timeout,
        "preload_app": False,
        "control_socket_disable": True,  # gunicorn >= 25.1 shares one socket path per user
        "accesslog": None,
        "logger_class": "yabot.gunicorn_logger.Logger",
        "on_starting": on_starting,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "on_exit": on_exit,
    }


def serve(settings: Settings) -> None:
    """Run gunicorn in this process with `gunicorn_config` (what `yabot run` does); returns
    when gunicorn exits."""
    run_gunicorn(gunicorn_config(settings), asgi_application)


def run_gunicorn(options: dict[str, Any], app: object) -> None:
    """Run gunicorn in this process with ``options`` (as `gunicorn_config` makes them)
    serving ``app``; returns when gunicorn exits. The benchmarks serve variants through it."""
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
        def load_config(self) -> None:
            for key, value in options.items():
                if key != "wsgi_app":
                    self.cfg.set(key, value)

        def load(self) -> object:
            return app

    Server().run()
