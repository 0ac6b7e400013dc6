"""Crash injection between "written" and "published": every committed change has exactly its
events, every interrupted transfer or gift is finished or refunded, the ledger sums to the
balance. Each case is real processes on one SQLite file and a redis-server of the test's
own: set up (once for all cases, then copied), die at a named crash point
(`yabot.crashpoints`, ``os._exit`` — nothing flushed, as after ``kill -9``), then start again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, func, select

from tests.support.processes import clean_env
from tests.support.redis_server import (
    MISSING,
    RedisServer,
    redis_server_binary,
    stream_entries,
)
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import scaled
from yabot.crashpoints import EXIT_CODE
from yabot.domain.besitos import derived_key, user_key
from yabot.events.models import BaseEvent, BesitosTransferred, parse_event
from yabot.services.besitos import CREDIT, REFUND
from yabot.stores.engine import make_engine
from yabot.stores.tables import besitos_ledger, event_outbox, pending_transfers, user_documents

REPO = Path(__file__).resolve().parents[2]
DATABASE = "crash.sqlite3"
STREAM = "events"
ALL_OPS = "earn,transfer,gift,buy,spend,react"
PHASE_CEILING = 600.0  # a process start, a few asks and the relay: seconds on a quiet machine

CASES = [
    ("store-before-commit", ALL_OPS),
    ("store-after-commit", ALL_OPS),
    ("store-after-commit", "transfer,earn"),
    ("transfer-debited", "transfer,gift,buy"),
    ("transfer-debited", "gift,transfer"),
    ("transfer-debited", "buy,transfer"),
    ("relay-before-send", ALL_OPS),
    ("relay-after-send", ALL_OPS),
]


def run_phase(env: dict[str, str], phase: str, ops: str = "",
              crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = {"YABOT_CRASH_AT": crash_at} if crash_at else {}
    return subprocess.run(
        [sys.executable, "-m", "tests.support.crash_worker", phase, ops],
        env=clean_env({**env, **extra}), cwd=REPO, capture_output=True, text=True,
        timeout=scaled(PHASE_CEILING), check=False,
    )


def stream_events(client: redis.Redis) -> list[BaseEvent]:
    return [parse_event(fields[b"body"]) for _, fields in stream_entries(client, STREAM)]


def env_for(directory: Path, redis_url: str) -> dict[str, str]:
    # SQLite only: the crash windows are in our code, the same on both SQL dialects, and
    # each case already costs two process starts.
    return {
        "YABOT_ENV": "test", "YABOT_DATA_DIR": str(directory / "var"),
        "JWT_SECRET": TEST_JWT_SECRET, "DATABASE_URL": f"sqlite:///{directory / DATABASE}",
        "REDIS_URL": redis_url, "EVENTS_STREAM": STREAM,
        "EVENTS_REPLAY_INTERVAL": "0.05", "EVENTS_RETRY_MAX_DELAY": "0.1",
        "BESITOS_RECOVERY_INTERVAL": "0.2",
    }


@pytest.fixture(scope="module")
def set_up(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``setup`` phase (two users, one funded, the outbox relayed), run once for every
    case: a folder holding its SQLite file, data dir and stopped Redis's append-only file.
    Each case starts from a copy, exactly the state its own ``setup`` run would leave."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(MISSING)
    template = tmp_path_factory.mktemp("crash-setup")
    server = RedisServer(template / "redis", binary).start()
    try:
        setup = run_phase(env_for(template, server.url), "setup")
        assert setup.returncode == 0, setup.stderr[-3000:]
    finally:
        server.stop()  # appendfsync always: every acknowledged write is in the file
    (template / "redis" / "redis.log").unlink(missing_ok=True)
    return template


@pytest.fixture
def prepared_redis(set_up: Path, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this case's own on a copy of the set-up state (the SQLite file and
    data dir are copied next to it, into ``tmp_path``)."""
    for name in [DATABASE, "var", *(p.name for p in set_up.glob(DATABASE + "-*"))]:
        source = set_up / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        elif source.exists():
            shutil.copy2(source, tmp_path / name)
    shutil.copytree(set_up / "redis", tmp_path / "redis")
    binary = redis_server_binary()
    assert binary is not None  # `set_up` skipped otherwise
    server = RedisServer(tmp_path / "redis", binary).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("crash_at", "ops"), CASES)
def test_a_crash_at_any_step_leaves_every_change_with_exactly_its_events(
    crash_at: str, ops: str, prepared_redis: RedisServer, tmp_path: Path
) -> None:
    env = env_for(tmp_path, prepared_redis.url)
    database_url = env["DATABASE_URL"]
    redis_server = prepared_redis
    crashed = run_phase(env, "run", ops, crash_at=crash_at)
    assert crashed.returncode == EXIT_CODE, (
        f"expected to die at {crash_at}: rc={crashed.returncode}\n{crashed.stderr[-3000:]}")
    client = redis_server.client()
    relayed_before_recovery = len(stream_events(client))

    recovered = run_phase({**env, "BESITOS_RECOVERY_AFTER": "0"}, "recover", ops)
    assert recovered.returncode == 0, recovered.stderr[-3000:]

    engine = make_engine(database_url)
    try:
        check_invariants(engine, client, ops, relayed_before_recovery)
    finally:
        engine.dispose()


def assert_only_the_batch_in_flight_was_relayed_again(
        event_ids: list[str], relayed_before_recovery: int) -> None:
    """At least once, and no more than a crash explains. The relay runs on its own thread, so
    whatever crash point the case names, the process can die between the relay's send and
    its delete; the next process then sends that batch again, first. Hence: no repeat within
    either process's entries, and the repeats are the crashed process's last entries,
    sent again as the recovering process's first."""
    before, after = event_ids[:relayed_before_recovery], event_ids[relayed_before_recovery:]
    assert len(set(before)) == len(before), "the crashed process relayed an event twice"
    assert len(set(after)) == len(after), "the recovering process relayed an event twice"
    again = len(set(before) & set(after))
    assert set(before[len(before) - again:]) == set(after[:again]), (
        "an event was relayed again that was not in the batch in flight at the crash")


def check_invariants(engine: Engine, client: redis.Redis, ops: str,
                     relayed_before_recovery: int) -> None:
    with engine.connect() as conn:
        balances = {int(u): int(b) for u, b in conn.execute(
            select(user_documents.c.user_id, user_documents.c.besitos))}
        last_seqs = {int(u): int(s) for u, s in conn.execute(
            select(user_documents.c.user_id, user_documents.c.event_seq))}
        sums = {int(u): int(t) for u, t in conn.execute(
            select(besitos_ledger.c.user_id, func.sum(besitos_ledger.c.amount))
            .group_by(besitos_ledger.c.user_id))}
        ledger = {(row.user_id, row.key) for row in conn.execute(
            select(besitos_ledger.c.user_id, besitos_ledger.c.key))}
        keys = {key for _, key in ledger}
        assert conn.execute(select(func.count()).select_from(pending_transfers)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(event_outbox)).scalar() == 0

    # The ledger sums to the balance, for every user.
    assert {user: int(sums.get(user, 0)) for user in balances} == balances

    # Every transfer or gift debited is finished or refunded, never both, never neither.
    for op in ("transfer", "gift", "buy"):
        debit = user_key(1, f"op-{op}")
        if debit not in keys:
            continue
        refunded = derived_key(debit, REFUND) in keys
        if op == "transfer":
            credited = user_key(1, "op-transfer", CREDIT) in keys
            assert credited != refunded, (op, credited, refunded)
        else:
            assert not refunded, op  # the recipient exists: the delivery is always made

    events = stream_events(client)
    assert_only_the_batch_in_flight_was_relayed_again(
        [str(event.event_id) for event in events], relayed_before_recovery)
    unique = {str(event.event_id): event for event in events}.values()

    # Every balance change has exactly one event, and no event names a change not stored.
    changes = Counter((event.user_id, event.ledger_key) for event in unique
                      if isinstance(event, BesitosTransferred))
    assert set(changes) == ledger
    assert max(changes.values()) == 1

    # Each user's events are numbered 1..n without a gap or a repeat, n as stored.
    seqs: dict[int, list[int]] = defaultdict(list)
    for event in unique:
        seqs[event.user_id].append(event.seq)
    for user_id, last in last_seqs.items():
        assert sorted(seqs[user_id]) == list(range(1, last + 1)), user_id
    # And they reached the stream in that order (the relay keeps the outbox's order).
    for user_id in last_seqs:
        in_order = [event.seq for event in unique if event.user_id == user_id]
        assert in_order == sorted(in_order), user_id
