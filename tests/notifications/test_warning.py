"""The ``vip-warning`` job on its own (SQLite file): one warning per subscription end, none
for a subscription that changed meanwhile, none to a user who blocked the bot; the
coordinator group's handler keeps the job before the current end; and the VIP jobs ask the
user's session at the process that owns the user."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from tests.support.clock import ManualClock
from tests.support.settings import SettingsFactory
from yabot.domain.subscriptions import Plan
from yabot.domain.users import UserDocument
from yabot.events.models import SubscriptionChanged
from yabot.notifications.counters import NotificationCounters
from yabot.notifications.group import NotificationRules
from yabot.notifications.texts import notification_text
from yabot.notifications.warning import warn_vip
from yabot.runtime import Runtime
from yabot.scheduler import Job, JobHandlers, Scheduler, SchedulerMetrics
from yabot.scheduler.vip import VIP_EXPIRY, VIP_WARNING, vip_jobs, warning_key
from yabot.sessions.messages import GetSubscription
from yabot.stores.engine import make_engine
from yabot.stores.tables import blocked_chats, metadata, notifications, scheduled_jobs
from yabot.views import SubscriptionView

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
ENDS = NOW + timedelta(hours=2)
LEAD = 3600.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'warning.sqlite3'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


class Setup:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ends: datetime | None = ENDS
        self.counters = NotificationCounters()
        document = UserDocument.model_validate({"user_id": 1, "language": "es",
                                                "notifications": True})
        self.rules = NotificationRules(lambda user_id: document, counters=self.counters)
        self.run = warn_vip(lambda: engine, self.rules, self.subscription, lambda: NOW,
                            counters=self.counters)

    def subscription(self, user_id: int) -> SubscriptionView:
        if self.ends is None:
            return SubscriptionView(plan=Plan.FREE)
        return SubscriptionView(plan=Plan.VIP, status="active", ends_at=self.ends, vip=True)

    def fire(self, ends: datetime = ENDS, attempts: int = 0) -> None:
        self.run(Job(id=1, key=warning_key(1), kind=VIP_WARNING, user_id=1,
                     payload={"ends_at": ends.isoformat()}, due_at=ends - timedelta(hours=1),
                     version=1, attempts=attempts))

    def texts(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(notifications.c.text)
                                     .order_by(notifications.c.created_at)).scalars())


def warning(ends: datetime) -> str:
    return notification_text("vip_warning", "es", ends=ends.strftime("%Y-%m-%d %H:%M"))


def test_a_job_fired_twice_warns_once_and_a_new_end_warns_again(engine: Engine) -> None:
    setup = Setup(engine)
    setup.fire()
    setup.fire(attempts=1)  # its process died before deleting it: fired again
    later = ENDS + timedelta(days=30)
    setup.ends = later  # renewed: the new end is a new cause
    setup.fire(later)
    assert setup.texts() == [warning(ENDS), warning(later)]


def test_a_subscription_that_changed_meanwhile_is_not_warned_about(engine: Engine) -> None:
    setup = Setup(engine)
    setup.ends = ENDS + timedelta(days=30)  # moved, and the job not yet
    setup.fire()
    setup.ends = None  # cancelled
    setup.fire()
    setup.ends = NOW  # ending now: too late to warn, the lapse notice follows
    setup.fire(NOW)
    assert setup.texts() == []
    assert setup.counters.get("stale_warning") == 3


def test_a_user_who_blocked_the_bot_is_not_warned(engine: Engine) -> None:
    setup = Setup(engine)
    with engine.begin() as conn:
        conn.execute(insert(blocked_chats).values(user_id=1, blocked_at=NOW))
    setup.fire()
    assert setup.texts() == []
    assert setup.counters.get("blocked") == 1


def changed(status: str, expires_at: datetime | None, plan: str = "vip") -> SubscriptionChanged:
    return SubscriptionChanged(user_id=1, seq=1, plan=plan, status=status,  # type: ignore[arg-type]
                               expires_at=expires_at, occurred_at=NOW)


def warning_due(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        due = conn.execute(select(scheduled_jobs.c.due_at)
                           .where(scheduled_jobs.c.key == warning_key(1))).scalar()
    return due.replace(tzinfo=UTC) if due is not None else None


@pytest.mark.parametrize(("event", "due"), [
    (changed("active", ENDS), ENDS - timedelta(seconds=LEAD)),
    (changed("active", NOW + timedelta(minutes=30)), None),  # less left than the lead
    (changed("cancelled", None), None),
    (changed("expired", None), None),
    (changed("active", ENDS, plan="free"), None),
])
def test_the_warning_job_follows_the_subscription(engine: Engine, event: SubscriptionChanged,
                                                  due: datetime | None) -> None:
    handle = vip_jobs(LEAD)
    with engine.begin() as conn:
        handle(changed("active", ENDS + timedelta(days=1)), conn)  # an earlier VIP
        handle(event, conn)
    assert warning_due(engine) == due


def test_no_warning_job_with_a_lead_of_zero(engine: Engine) -> None:
    with engine.begin() as conn:
        vip_jobs(0)(changed("active", ENDS), conn)
    assert warning_due(engine) is None


def test_the_scheduler_fires_the_warning_at_its_time(engine: Engine) -> None:
    setup = Setup(engine)
    with engine.begin() as conn:
        vip_jobs(LEAD)(changed("active", ENDS), conn)
    clock = ManualClock(NOW.timestamp())
    handlers = JobHandlers()
    handlers.on(VIP_WARNING, setup.run)
    scheduler = Scheduler(lambda: engine, handlers, clock=clock, metrics=SchedulerMetrics())
    assert scheduler.fire_due() == 0
    clock.now = (ENDS - timedelta(seconds=LEAD)).timestamp()
    assert scheduler.fire_due() == 1
    assert setup.texts() == [warning(ENDS)]


class ElsewhereRouter:
    """A router for a process that owns no partition: every ask is forwarded."""

    def __init__(self, ends: datetime) -> None:
        self.ends = ends
        self.forwarded: list[tuple[int, object]] = []

    def owns(self, user_id: int) -> bool:
        return False

    def forward(self, user_id: int, message: object, timeout: float) -> SubscriptionView:
        self.forwarded.append((user_id, message))
        return SubscriptionView(plan=Plan.VIP, status="active", ends_at=self.ends, vip=True)


def test_jobs_of_a_user_owned_elsewhere_ask_the_owner(make_settings: SettingsFactory) -> None:
    ends = datetime.now(UTC) + timedelta(days=1)
    with Runtime(make_settings()) as runtime:
        router = ElsewhereRouter(ends)
        runtime.router = router  # type: ignore[assignment]
        for kind in (VIP_EXPIRY, VIP_WARNING):
            handler = runtime.job_handlers.for_kind(kind)
            assert handler is not None
            handler(Job(id=1, key=f"{kind}:5", kind=kind, user_id=5,
                        payload={"ends_at": ends.isoformat()}, due_at=NOW, version=1,
                        attempts=0))
        assert [(user_id, type(message)) for user_id, message in router.forwarded] == [
            (5, GetSubscription), (5, GetSubscription)]
        assert 5 not in runtime.sessions.live_keys()  # no session of theirs started here
