"""The ``scheduler`` child of the root: owns the `Scheduler` thread of this process."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from actors import Actor
from yabot.scheduler.jobs import schedule
from yabot.scheduler.retention import RETENTION_JOB, retention_job
from yabot.scheduler.scheduler import JobHandlers, Scheduler
from yabot.settings import Settings
from yabot.stores.handles import Stores

log = structlog.get_logger("yabot.scheduler")


class SchedulerActor(Actor):
    """Starts the scheduler thread after the stores (and sessions, which jobs tell) are up;
    stop waits for the job in progress. Registers the retention job (`EVENTS_RETENTION`) and
    makes its first pass due at start-up. Jobs of other kinds are in ``handlers``."""

    def __init__(self, settings: Settings, stores: Stores, handlers: JobHandlers,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self._settings = settings
        self._stores = stores
        self._handlers = handlers
        self._clock = clock
        self.scheduler: Scheduler | None = None

    def pre_start(self) -> None:
        stores, events = self._stores, self._settings.events
        options = {"clock": self._clock} if self._clock is not None else {}
        scheduler = Scheduler(lambda: stores.relational.engine, self._handlers,
                              lease=events.scheduler_lease, **options)  # type: ignore[arg-type]
        self._handlers.on(RETENTION_JOB, retention_job(lambda: stores.relational.engine,
                                                       events, scheduler.now))
        with stores.relational.engine.begin() as conn:
            schedule(conn, RETENTION_JOB, RETENTION_JOB, scheduler.now())
        self.scheduler = scheduler.start(events.scheduler_poll_interval)
        log.info("scheduler started", owner=scheduler.owner)

    def post_stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
