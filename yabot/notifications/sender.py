"""Sending queued notifications: one thread per process, a shared rate bound, 429s honoured.

Rows are *claimed* one by one (``outcome`` NULL → ``sending``, a conditional UPDATE) just
before each send, and settled after it (a batch's outcomes written together), so two senders
— in one process or several — never send the same row, and a row is sent at most once: a
process that dies between claim and settle leaves it ``sending`` (not sent again — a lost
notification is better than a duplicate one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine, select, update

from yabot.notifications.counters import NotificationCounters, notification_counters
from yabot.periodic import PeriodicThread
from yabot.stores.sql import insert_if_absent
from yabot.stores.tables import blocked_chats, notifications

log = structlog.get_logger("yabot.notifications")

#: Telegram's broadcast bound: about 30 messages per second per bot.
RATE_PER_SECOND = 30.0
#: How many 429s in a row one message may meet before it waits for the next pass.
MAX_FLOOD_RETRIES = 5
EPSILON = 1e-9
#: How often a process with no share of the rate looks again.
NO_SHARE_RECHECK = 0.5
#: The shortest wait: a clock may not move for a wait shorter than its resolution.
MIN_WAIT = 0.001


class RetryLater(Exception):
    """Telegram said 429: nothing may be sent for ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class ChatBlocked(Exception):
    """Telegram said 403: the user blocked the bot."""


class Undeliverable(Exception):
    """Telegram refused this message for good (400: chat not found …)."""


#: Sends ``text`` to the private chat of user ``chat_id``, raising the exceptions above.
Send = Callable[[int, str], None]


class TokenBucket:
    """At most ``rate * share()`` takes per second (bursts of ``burst``), shared by every
    thread that sends for the bot; `hold` stops everyone for a while (a 429's
    ``retry_after``).

    ``share`` is this process's part of the bot's rate (0..1): with several processes, the
    fraction of the partitions it owns, so that together they stay within ``rate`` (partition
    leases are exclusive, so the shares never add up to more than 1)."""

    def __init__(self, rate: float = RATE_PER_SECOND, burst: float | None = None, *,
                 share: Callable[[], float] = lambda: 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._full_rate = rate
        self._share = share
        self._burst = burst if burst is not None else rate
        self._tokens = self._burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._held_until = 0.0
        self._lock = threading.Lock()

    @property
    def _rate(self) -> float:
        return self._full_rate * min(1.0, max(0.0, self._share()))

    def open(self) -> bool:
        """Whether this process may send at all now (its share is not 0)."""
        return self._rate > 0

    def take(self) -> None:
        """Wait until one message may go, then take its token."""
        while True:
            with self._lock:
                now, rate = self._clock(), self._rate
                self._tokens = min(self._burst,
                                   self._tokens + (now - self._updated) * rate)
                self._updated = now
                if now < self._held_until:
                    wait = self._held_until - now
                elif self._tokens >= 1 - EPSILON:  # float refills fall a hair short
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                elif rate <= 0:
                    wait = NO_SHARE_RECHECK  # no partition owned just now
                else:
                    wait = (1 - self._tokens) / rate
            self._sleep(max(wait, MIN_WAIT))

    def hold(self, seconds: float) -> None:
        """Nobody takes a token for ``seconds`` from now (and the burst starts empty)."""
        with self._lock:
            now = self._clock()
            self._held_until = max(self._held_until, now + seconds)
            self._tokens = 0.0
            self._updated = now


class Notifier:
    """Sends what the notifications group queued, oldest first, through ``send()`` (None:
    no bot now — rows wait while ``bot_expected``, else they are skipped and counted)."""

    def __init__(self, engine: Callable[[], Engine], send: Callable[[], Send | None], *,
                 bot_expected: bool, bucket: TokenBucket | None = None,
                 counters: NotificationCounters = notification_counters,
                 interval: float = 1.0, batch: int = 100) -> None:
        self._engine = engine
        self._send = send
        self._bot_expected = bot_expected
        self._bucket = bucket or TokenBucket()
        self._counters = counters
        self._batch = batch
        self._thread = PeriodicThread("notifier", interval, self.drain)
        self._started = False

    def start(self) -> None:
        self._thread.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._thread.stop()

    def wake(self) -> None:
        self._thread.wake()

    def drain(self) -> int:
        """Send (or settle) one batch of queued notifications; returns how many settled.

        Each row is claimed on its own just before its send (a crash loses at most the one
        in flight); outcomes are written together at the end of the batch — a row that
        stays ``sending`` after a crash is never sent again either way."""
        send = self._send()
        if send is None and self._bot_expected:
            return 0  # the bot is starting: keep them for it
        if send is not None and not self._bucket.open():
            return 0  # no share of the rate here now: the processes that have one send
        with self._engine().connect() as conn:
            queued = conn.execute(
                select(notifications.c.cause, notifications.c.user_id, notifications.c.text)
                .where(notifications.c.outcome.is_(None))
                .order_by(notifications.c.created_at).limit(self._batch)).all()
            blocked = set(conn.execute(select(blocked_chats.c.user_id).where(
                blocked_chats.c.user_id.in_({user_id for _, user_id, _ in queued}))).scalars())
        outcomes: dict[str, list[str]] = {}
        try:
            for cause, user_id, text in queued:
                if not self._claim(cause):
                    continue
                if send is None:
                    outcome = "no-bot"
                elif user_id in blocked:
                    outcome = "blocked"
                else:
                    outcome = self._deliver(send, cause, user_id, text)
                    if outcome == "blocked":
                        blocked.add(user_id)
                outcomes.setdefault(outcome, []).append(cause)
        finally:
            self._settle(outcomes)
            for outcome, causes in outcomes.items():
                self._counters.incr(outcome, len(causes))
        return sum(len(causes) for causes in outcomes.values())

    def _deliver(self, send: Send, cause: str, user_id: int, text: str) -> str:
        for _ in range(MAX_FLOOD_RETRIES):
            self._bucket.take()
            try:
                send(user_id, text)
            except RetryLater as flood:
                self._counters.incr("retry_after")
                log.info("telegram asked to slow down", retry_after=flood.retry_after)
                self._bucket.hold(flood.retry_after)
                continue
            except ChatBlocked:
                with self._engine().begin() as conn:
                    insert_if_absent(conn, blocked_chats, {"user_id": user_id,
                                                           "blocked_at": datetime.now(UTC)})
                return "blocked"
            except Exception as exc:  # undeliverable, or the network: logged, not retried
                log.warning("a notification could not be sent", cause=cause,
                            user_id=user_id, error=repr(exc))
                return "failed"
            return "sent"
        return "failed"

    def _claim(self, cause: str) -> bool:
        with self._engine().begin() as conn:
            claimed = conn.execute(update(notifications).where(
                notifications.c.cause == cause, notifications.c.outcome.is_(None),
            ).values(outcome="sending"))
            return claimed.rowcount == 1

    def _settle(self, outcomes: dict[str, list[str]]) -> None:
        if not outcomes:
            return
        with self._engine().begin() as conn:
            for outcome, causes in outcomes.items():
                conn.execute(update(notifications).where(notifications.c.cause.in_(causes))
                             .values(outcome=outcome, settled_at=datetime.now(UTC)))
