"""At least once in, once in effect, across a crash: a process that dies right after a bot
update's change is committed, before the update's own record is written, gets the update again
from the intake after the restart — and the redelivery changes nothing and sends nothing,
because the change stored the update as handled in its own write.

Real processes (`yabot run`), dying at the ``store-after-commit`` crash point
(`yabot.crashpoints`: ``os._exit``, as ``kill -9`` leaves it): on the embedded default (SQLite,
the intake an SQL table) and on PostgreSQL with Redis; `make soak` adds SQLite with the Redis
intake."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from tests.bot.updates import message, press
from tests.support.bot import BOT_TOKEN, WEBHOOK_SECRET, WEBHOOK_URL
from tests.support.fake_telegram import FakeTelegram
from tests.support.http import bearer, request
from tests.support.nodes import Node
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import eventually
from yabot.api.auth import mint_token
from yabot.events.stats import daily_figures
from yabot.intake import partition_of
from yabot.settings import JwtSettings, load_settings
from yabot.stores.engine import make_engine
from yabot.stores.tables import besitos_ledger, user_documents

pytestmark = pytest.mark.timeout(300)  # two process starts per test

USER = 710_001
UPDATE = 910_001
PARTITIONS = 4
EARNED = 7  # the barrier's besitos: counted once every earlier event of the user is
CRASHED = "crash point store-after-commit: exiting"


@pytest.fixture(params=[
    "sqlite",
    # What a redelivery may skip depends on two choices, and these two cases cover each:
    # the intake (the SQL table above, Redis here) and the SQL dialect writing the handled
    # window with the change (SQLite above, PostgreSQL here). Their remaining combination
    # takes two more process starts per test for no code path of its own.
    pytest.param("sqlite+redis", marks=pytest.mark.soak),
    "postgresql+redis",
])
def crash_env(request: pytest.FixtureRequest, tmp_path: Path, fake_telegram: FakeTelegram
              ) -> dict[str, str]:
    env = {"YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'yabot.sqlite3'}",
           "JWT_SECRET": TEST_JWT_SECRET, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
           "TELEGRAM_API_URL": fake_telegram.url, "BOT_WEBHOOK_URL": WEBHOOK_URL,
           "BOT_WEBHOOK_SECRET": WEBHOOK_SECRET, "PARTITIONS": str(PARTITIONS),
           "EVENTS_REPLAY_INTERVAL": "0.05"}
    if request.param.endswith("+redis"):
        url, prefix = request.getfixturevalue("local_redis")
        env |= {"REDIS_URL": url, "INTAKE_KEY_PREFIX": prefix.rstrip(":"),
                "EVENTS_STREAM": prefix + "events",
                "RATE_LIMIT_KEY_PREFIX": prefix + "ratelimit",
                # A dead process's leases pass on within seconds (the test waits for it).
                "LEASE_TTL": "3", "LEASE_RENEW_INTERVAL": "0.5",
                "LEASE_SAFETY_MARGIN": "0.5"}
    if request.param.startswith("postgresql"):
        env["DATABASE_URL"] = request.getfixturevalue("fresh_postgres_url")
    return env


def restarted(crash_env: dict[str, str], tmp_path: Path) -> Node:
    """The process started again after the crash, once it serves and the intake has handed
    it the user's pending entry (handled, or skipped) — the caller stops it."""
    second = Node(crash_env, tmp_path, "second", webhook_secret=WEBHOOK_SECRET)
    eventually(second.ready, "the restarted process serves", 120)
    partition = partition_of(USER, PARTITIONS)
    eventually(lambda: intake_lag(second, partition) == 0,
               "the redelivered entry taken off the intake", 120)
    return second


def token_for(scope: str) -> dict[str, str]:
    settings = load_settings(jwt=JwtSettings(secret=SecretStr(TEST_JWT_SECRET)))
    return bearer(mint_token(settings, "tests", [scope]))


def intake_lag(node: Node, partition: int) -> int | None:
    """The partition's entries not yet handled, as ``node`` reports them; None while the node
    does not own it (yet)."""
    text = request("GET", f"{node.url}/metrics").body.decode()
    prefix = f'yabot_intake_lag{{partition="{partition}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return int(float(line[len(prefix):]))
    return None


def test_an_update_whose_change_was_committed_before_a_crash_is_not_applied_again(
    crash_env: dict[str, str], tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    fake = fake_telegram
    first = Node({**crash_env, "YABOT_CRASH_AT": "store-after-commit"}, tmp_path, "first",
                 webhook_secret=WEBHOOK_SECRET)
    try:
        eventually(first.ready, "the first process serves", 120)
        # /start creates the user and stores its UserInteraction("start") event: the
        # process dies right after that commit, before the reply and the update's record.
        # (The worker may die before its 200 is written: the update was stored before.)
        with contextlib.suppress(OSError):
            assert first.post(message(USER, "/start", update_id=UPDATE)).status == 200
        # The worker exits there; its gunicorn master would boot another (with the crash
        # point still armed): the whole process group goes, as a host failure takes it.
        eventually(lambda: CRASHED in first.log(), "the crash point is reached", 60)
        first.kill9()
    finally:
        first.stop()
    assert fake.sent(chat_id=USER) == []  # it died before replying

    # The intake hands the update over again (a pending entry): handled, or skipped.
    second = restarted(crash_env, tmp_path)
    try:
        # A barrier: an API change of the same user, after anything the redelivery did
        # (one session, one order); once its event is counted, so is every earlier one.
        earned = request("POST", f"{second.url}/user/{USER}/besitos", headers={
            **token_for("besitos:write"), "Content-Type": "application/json",
            "Idempotency-Key": "barrier"},
            body=json.dumps({"kind": "earn", "amount": EARNED}).encode())
        assert earned.status == 200, earned.body
        engine = make_engine(crash_env["DATABASE_URL"])
        try:
            today = datetime.now(UTC).date()

            def figures_of_today() -> tuple[int, int]:
                found = daily_figures(engine, today, today)
                return (found[0].starts, found[0].besitos_earned) if found else (0, 0)

            eventually(lambda: figures_of_today()[1] >= EARNED, "the barrier counted", 60)
            # The /start happened once: one "start" interaction, then the barrier's event.
            assert figures_of_today() == (1, EARNED)
            with engine.connect() as conn:
                last_seq = conn.execute(select(user_documents.c.event_seq).where(
                    user_documents.c.user_id == USER)).scalar_one()
            assert last_seq == 2
        finally:
            engine.dispose()
        # No reply to the redelivery: the one reply the update could have had died with the
        # first process (at most once).
        assert fake.sent(chat_id=USER) == []
        # Skipped once: by the restarted process (or by the worker the first one's master
        # booted in the moment before it was killed).
        skips = (first.log() + second.log()).count("redelivered update skipped")
        assert skips == 1, second.log()
    finally:
        second.stop()


def test_a_choice_paid_for_before_a_crash_is_moved_by_the_redelivery_and_paid_once(
    crash_env: dict[str, str], tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    """A story choice with a price is two writes (pay, then move): a process dying between
    them leaves the update unrecorded, and its redelivery finds the payment (keyed by the
    update) and only moves."""
    fake = fake_telegram
    first = Node({**crash_env, "YABOT_CRASH_AT": "choice-paid"}, tmp_path, "first",
                 webhook_secret=WEBHOOK_SECRET)
    try:
        eventually(first.ready, "the first process serves", 120)
        assert first.post(message(USER, "/start", update_id=UPDATE)).status == 200
        eventually(lambda: len(fake.sent(chat_id=USER)) == 1, "the welcome", 60)
        # "Accept the invitation" pays 5 besitos and leads to the gate (the toll is 3).
        assert first.post(press(USER, "c:start:accept", message_id=1,
                                update_id=UPDATE + 1)).status == 200
        eventually(lambda: len(fake.calls_of("answerCallbackQuery")) == 1, "the first choice",
                   60)
        with contextlib.suppress(OSError):  # the worker may die before its 200 is written
            assert first.post(press(USER, "c:gate:pay_toll", message_id=1,
                                    update_id=UPDATE + 2)).status == 200
        eventually(lambda: "crash point choice-paid: exiting" in first.log(),
                   "the toll paid, the move not made", 60)
        first.kill9()
    finally:
        first.stop()
    assert len(fake.calls_of("answerCallbackQuery")) == 1  # the toll's press: no answer

    second = restarted(crash_env, tmp_path)
    try:
        state = request("GET", f"{second.url}/user/{USER}/state",
                        headers=token_for("users:read"))
        assert state.status == 200, state.body
        assert (state.json()["current_fragment"], state.json()["besitos"]) == ("hall", 2)
        engine = make_engine(crash_env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                amounts = [int(a) for a in conn.execute(
                    select(besitos_ledger.c.amount).where(besitos_ledger.c.user_id == USER)
                    .order_by(besitos_ledger.c.id)).scalars()]
        finally:
            engine.dispose()
        assert amounts == [5, -3]  # the reward, the toll once
        # The redelivery answered the press (the first process died before it could).
        assert len(fake.calls_of("answerCallbackQuery")) == 2
    finally:
        second.stop()
