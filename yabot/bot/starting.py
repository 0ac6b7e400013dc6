"""Starting the bot without holding up the HTTP API: aiogram's models take seconds of CPU to
import, so the worker binds its routes first and the bot is imported and started on a thread
of its own.

Until the bot runs, the webhook route answers 503 with ``Retry-After`` (Telegram retries), and
polling has simply not begun. No aiogram import here.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from actors import KeyedActors
from yabot.bot.accepted import Accepted
from yabot.errors import Unavailable
from yabot.health import ComponentHealth, HealthStatus
from yabot.intake import Intake
from yabot.settings import Settings

if TYPE_CHECKING:
    from yabot.bot.runner import BotRunner

log = structlog.get_logger("yabot.bot")


class BotStart:
    """Imports, builds and starts the `BotRunner` (`begin`: on a thread; `run`: here), and
    stands in for it at the webhook until it runs (`parse` and `accept`)."""

    def __init__(self, settings: Settings, sessions: KeyedActors[int, Any],
                 intake: Callable[[], Intake], *,
                 owned: Callable[[], list[int]] | None = None,
                 owns: Callable[[int], bool] | None = None,
                 seen: Callable[[int, int], Awaitable[bool]] | None = None) -> None:
        """``intake`` builds the durable log the runner appends to; ``owned``/``owns`` name
        the partitions this process handles; ``seen`` asks a user's session whether it
        handled an update (see `BotRunner`)."""
        self._settings = settings
        self._sessions = sessions
        self._intake = intake
        self._owned = owned
        self._owns = owns
        self._seen = seen
        self._lock = threading.Lock()
        self._runner: BotRunner | None = None
        self._cancelled = False
        self._thread: threading.Thread | None = None
        self.webhook = settings.bot.webhook_url is not None

    @property
    def runner(self) -> BotRunner | None:
        """The running bot, once started."""
        return self._runner

    def begin(self) -> None:
        """Start on a daemon thread (so a worker that exits during the import is not held)."""
        self._thread = threading.Thread(target=self._run_logged, name="telegram-start",
                                        daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Import, build and start the bot on the calling thread."""
        from yabot.bot.runner import BotRunner, build_dispatcher  # seconds of CPU: see above

        runner = BotRunner(self._settings, build_dispatcher(self._sessions, self._settings),
                           self._intake(), owned=self._owned, owns=self._owns,
                           seen=self._seen)
        with self._lock:
            if self._cancelled:
                return
            runner.start()
            self._runner = runner

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception("the telegram bot did not start")

    def health(self) -> ComponentHealth:
        """Fails until the bot runs: in webhook mode its updates are refused until then."""
        if self._runner is None:
            return ComponentHealth(name="telegram", status=HealthStatus.FAIL,
                                   output="the bot is starting (or did not start)")
        return ComponentHealth(name="telegram", status=HealthStatus.PASS,
                               details={"connected": self._runner.connected.is_set()})

    def stop(self) -> None:
        """Stop the bot, or keep it from starting if it has not yet."""
        with self._lock:
            self._cancelled = True
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()

    # -- the webhook's view (called on HTTP threads) ---------------------------------------

    def parse(self, data: object) -> Any:
        runner = self._runner
        if runner is None:
            raise Unavailable("the bot is starting")  # 503 with Retry-After: Telegram retries
        return runner.parse(data)

    def accept(self, update: Any, raw: str | None = None) -> Accepted:
        runner = self._runner
        return runner.accept(update, raw) if runner is not None else Accepted.STOPPED
