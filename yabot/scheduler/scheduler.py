"""Firing jobs: the `Scheduler` takes due jobs under a lease and runs their handlers."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, delete, or_, select, update

from yabot.periodic import PeriodicThread
from yabot.scheduler.jobs import Job
from yabot.stores.tables import scheduled_jobs

log = structlog.get_logger("yabot.scheduler")

#: What a job does; it may raise (the job is retried after a backoff, then given up).
JobHandler = Callable[[Job], None]


class JobHandlers:
    """One handler per job kind. Register before the scheduler starts."""

    def __init__(self) -> None:
        self._by_kind: dict[str, JobHandler] = {}

    def on(self, kind: str, handler: JobHandler) -> None:
        self._by_kind[kind] = handler

    def for_kind(self, kind: str) -> JobHandler | None:
        return self._by_kind.get(kind)


class SchedulerMetrics:
    """Jobs fired, failed and given up, and how late they fired (lag = fired - due)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fired = 0
        self.failed = 0
        self.given_up = 0
        self.last_lag = 0.0
        self.max_lag = 0.0

    def observe(self, lag: float, ok: bool) -> None:
        with self._lock:
            self.fired += ok
            self.failed += not ok
            self.last_lag = lag
            self.max_lag = max(self.max_lag, lag)

    def gave_up(self) -> None:
        with self._lock:
            self.given_up += 1

    def prometheus_text(self) -> str:
        with self._lock:
            return (
                "# HELP yabot_scheduler_jobs_total Scheduled jobs by outcome.\n"
                "# TYPE yabot_scheduler_jobs_total counter\n"
                f'yabot_scheduler_jobs_total{{outcome="fired"}} {self.fired}\n'
                f'yabot_scheduler_jobs_total{{outcome="failed"}} {self.failed}\n'
                f'yabot_scheduler_jobs_total{{outcome="given_up"}} {self.given_up}\n'
                "# HELP yabot_scheduler_lag_seconds How late the last job fired after its due "
                "time.\n"
                "# TYPE yabot_scheduler_lag_seconds gauge\n"
                f"yabot_scheduler_lag_seconds {self.last_lag:.6f}\n"
                "# HELP yabot_scheduler_max_lag_seconds The latest any job fired.\n"
                "# TYPE yabot_scheduler_max_lag_seconds gauge\n"
                f"yabot_scheduler_max_lag_seconds {self.max_lag:.6f}\n"
            )


#: The process's scheduler metrics (served on /metrics).
scheduler_metrics = SchedulerMetrics()


class Scheduler:
    """Fires due jobs of ``scheduled_jobs`` through their kind's handler.

    Guarantees:
    - A job is taken by one scheduler at a time, in any number of processes: a conditional
      UPDATE sets its lease (and on PostgreSQL ``FOR UPDATE SKIP LOCKED`` keeps competing
      schedulers off each other's rows). Another scheduler takes it only once the lease has
      expired — the first one died mid-fire — so a job fires once unless a process dies
      between firing it and deleting it (then once more: handlers are idempotent).
    - A job that succeeded is deleted, unless it was moved meanwhile (its version changed).
    - A job whose handler raised is due again after ``retry_delay`` times its attempts, and
      given up (deleted, logged, counted) after ``max_attempts``.
    - Late jobs (their time passed while no process ran) fire at the first `fire_due`.
    - Time comes from ``clock`` (epoch seconds), so tests move it by hand.
    """

    def __init__(
        self,
        engine: Callable[[], Engine],
        handlers: JobHandlers,
        *,
        owner: str | None = None,
        lease: float = 60.0,
        batch: int = 200,
        max_attempts: int = 5,
        retry_delay: float = 5.0,
        clock: Callable[[], float] = time.time,
        metrics: SchedulerMetrics = scheduler_metrics,
    ) -> None:
        self._engine = engine
        self._handlers = handlers
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._lease = lease
        self._batch = batch
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._clock = clock
        self._metrics = metrics
        self._thread: PeriodicThread | None = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def fire_due(self) -> int:
        """Take and fire every job due now (in batches); return how many were fired."""
        fired = 0
        while True:
            jobs = self._claim(self.now())
            for job in jobs:
                self._fire(job)
            fired += len(jobs)
            if len(jobs) < self._batch:
                return fired

    # -- running on a thread ---------------------------------------------------------------

    def start(self, poll_interval: float) -> Scheduler:
        """Fire due jobs now, then every ``poll_interval`` s (sooner when woken)."""
        self._thread = PeriodicThread("scheduler", poll_interval, self.fire_due,
                                      immediately=True).start()
        return self

    def wake(self) -> None:
        """Look for due jobs now rather than at the next poll."""
        if self._thread is not None:
            self._thread.wake()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.stop(timeout)

    # -- one job -----------------------------------------------------------------------------

    def _claim(self, now: datetime) -> list[Job]:
        t = scheduled_jobs
        free = or_(t.c.lease_until.is_(None), t.c.lease_until <= now)
        with self._engine().begin() as conn:
            query = (select(t).where(t.c.due_at <= now, free)
                     .order_by(t.c.due_at, t.c.id).limit(self._batch))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).mappings().all()
            if not rows:
                return []
            taken = set(conn.execute(
                update(t).where(t.c.id.in_([row["id"] for row in rows]), free)
                .values(lease_owner=self.owner,
                        lease_until=now + timedelta(seconds=self._lease),
                        attempts=t.c.attempts + 1)
                .returning(t.c.id)
            ).scalars())
        return [_job(row) for row in rows if row["id"] in taken]

    def _fire(self, job: Job) -> None:
        lag = max(0.0, (self.now() - job.due_at).total_seconds())
        handler = self._handlers.for_kind(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            handler(job)
        except Exception as exc:
            self._metrics.observe(lag, ok=False)
            self._failed(job, exc)
            return
        self._metrics.observe(lag, ok=True)
        t = scheduled_jobs
        with self._engine().begin() as conn:
            conn.execute(delete(t).where(t.c.id == job.id, t.c.version == job.version))

    def _failed(self, job: Job, error: Exception) -> None:
        t = scheduled_jobs
        mine = (t.c.id == job.id) & (t.c.version == job.version)
        attempts = job.attempts + 1
        with self._engine().begin() as conn:
            if attempts >= self._max_attempts:
                conn.execute(delete(t).where(mine))
                self._metrics.gave_up()
                log.error("scheduled job given up", key=job.key, kind=job.kind,
                          attempts=attempts, error=repr(error))
                return
            conn.execute(update(t).where(mine).values(
                due_at=self.now() + timedelta(seconds=self._retry_delay * attempts),
                lease_owner=None, lease_until=None,
            ))
        log.warning("scheduled job failed; retrying later", key=job.key, kind=job.kind,
                    attempts=attempts, error=repr(error))


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _job(row: Any) -> Job:
    return Job(id=row["id"], key=row["key"], kind=row["kind"], user_id=row["user_id"],
               payload=row["payload"] or {}, due_at=_aware(row["due_at"]),
               version=row["version"], attempts=row["attempts"])
