"""The durable scheduler on real SQL: jobs fire when due, once, across restarts and
competing schedulers; a moved job fires at its new time; a failing job is retried."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.support.clock import ManualClock
from tests.support.postgres import postgres_schema
from yabot.scheduler import Job, JobHandlers, Scheduler, SchedulerMetrics, cancel, schedule
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata, scheduled_jobs

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
        metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    with postgres_schema() as url:
        engine = make_engine(url)
        metadata.create_all(engine)
        yield engine
        engine.dispose()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def put(engine: Engine, key: str, due: float, kind: str = "note", user_id: int = 1) -> None:
    with engine.begin() as conn:
        schedule(conn, key, kind, at(due), user_id=user_id, payload={"key": key})


def remaining(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(scheduled_jobs)).scalar_one())


class Recorder:
    def __init__(self) -> None:
        self.fired: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, job: Job) -> None:
        with self._lock:
            self.fired.append(job.key)


def scheduler(engine: Engine, clock: ManualClock, recorder: Recorder,
              metrics: SchedulerMetrics | None = None, **options: float) -> Scheduler:
    handlers = JobHandlers()
    handlers.on("note", recorder)
    return Scheduler(lambda: engine, handlers, clock=clock, metrics=metrics or SchedulerMetrics(),
                     **options)  # type: ignore[arg-type]


def test_a_job_fires_when_due_once_and_is_gone(engine: Engine) -> None:
    clock, recorder = ManualClock(at(0).timestamp()), Recorder()
    put(engine, "a", 10)
    put(engine, "b", 20)
    jobs = scheduler(engine, clock, recorder)

    assert jobs.fire_due() == 0
    clock.now = at(10).timestamp()
    assert jobs.fire_due() == 1
    assert jobs.fire_due() == 0
    assert recorder.fired == ["a"]
    assert remaining(engine) == 1


def test_late_jobs_fire_at_start_up_and_the_lag_is_measured(engine: Engine) -> None:
    put(engine, "missed-1", 5)
    put(engine, "missed-2", 6)
    # A process starting 60 s after they were due (none ran meanwhile).
    clock, recorder, metrics = ManualClock(at(65).timestamp()), Recorder(), SchedulerMetrics()
    assert scheduler(engine, clock, recorder, metrics).fire_due() == 2
    assert recorder.fired == ["missed-1", "missed-2"]
    assert metrics.max_lag == pytest.approx(60.0)
    assert "yabot_scheduler_max_lag_seconds 60.0" in metrics.prometheus_text()


def test_a_moved_job_fires_at_its_new_time_and_a_cancelled_one_never(engine: Engine) -> None:
    clock, recorder = ManualClock(at(0).timestamp()), Recorder()
    put(engine, "moved", 10)
    put(engine, "cancelled", 10)
    put(engine, "moved", 30)
    with engine.begin() as conn:
        assert cancel(conn, "cancelled")
    jobs = scheduler(engine, clock, recorder)
    clock.now = at(20).timestamp()
    assert jobs.fire_due() == 0
    clock.now = at(30).timestamp()
    assert jobs.fire_due() == 1
    assert recorder.fired == ["moved"]


def test_a_job_taken_by_a_scheduler_that_died_fires_again_after_its_lease(engine: Engine
                                                                          ) -> None:
    clock = ManualClock(at(0).timestamp())
    put(engine, "a", 0)
    dying = Recorder()
    first = scheduler(engine, clock, dying, lease=30.0)
    assert [job.key for job in first._claim(first.now())] == ["a"]  # took it, then died
    survivor = Recorder()
    second = scheduler(engine, clock, survivor, lease=30.0)
    assert second.fire_due() == 0  # leased by the first
    clock.now = at(30).timestamp()
    assert second.fire_due() == 1
    assert survivor.fired == ["a"]
    assert remaining(engine) == 0


def test_a_failing_job_is_retried_later_then_given_up(engine: Engine) -> None:
    clock, metrics = ManualClock(at(0).timestamp()), SchedulerMetrics()
    attempts: list[int] = []

    def broken(job: Job) -> None:
        attempts.append(job.attempts)
        raise RuntimeError("the session is gone")

    handlers = JobHandlers()
    handlers.on("note", broken)
    jobs = Scheduler(lambda: engine, handlers, clock=clock, metrics=metrics, max_attempts=3,
                     retry_delay=10.0)
    put(engine, "a", 0)
    assert jobs.fire_due() == 1
    assert jobs.fire_due() == 0  # due again only after the retry delay
    clock.now = at(10).timestamp()
    assert jobs.fire_due() == 1
    clock.now = at(30).timestamp()
    assert jobs.fire_due() == 1
    assert attempts == [0, 1, 2]
    assert remaining(engine) == 0
    assert (metrics.failed, metrics.given_up) == (3, 1)


def test_ten_thousand_jobs_due_at_once_fire_once_each_across_competing_schedulers(
    engine: Engine
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite is the single-process embedded default: one scheduler per file")
    count = 10_000
    with engine.begin() as conn:
        conn.execute(scheduled_jobs.insert(), [
            {"key": f"job-{i}", "kind": "note", "user_id": i, "payload": {},
             "due_at": at(0), "created_at": at(0)} for i in range(count)
        ])
    clock, recorder = ManualClock(at(1).timestamp()), Recorder()
    schedulers = [scheduler(engine, clock, recorder, batch=250) for _ in range(4)]
    threads = [threading.Thread(target=s.fire_due) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    fired = Counter(recorder.fired)
    assert len(fired) == count
    assert max(fired.values()) == 1
    assert remaining(engine) == 0
