"""Several real processes on one PostgreSQL + Redis: every user owned by one process, updates
answered 200 by any of them handled by the owner, in order; writes read back at once through
another process; a paused owner handling nothing of what it lost. (A dead owner's partitions
taken over under load: `test_three_masters`.)"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.bot.updates import message
from tests.support.bot import WEBHOOK_SECRET
from tests.support.cluster import (
    PARTITIONS,
    TAKEOVER_BOUND,
    Cluster,
    fresh_cluster,
    notes,
    replied_to,
)
from tests.support.fake_telegram import FakeTelegram
from tests.support.http import bearer, request
from tests.support.nodes import Node
from tests.support.processes import clean_env
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import START_CEILING, eventually, scaled
from yabot.api.auth import mint_token
from yabot.intake import partition_of
from yabot.settings import JwtSettings, load_settings
from yabot.startup import ExitCode

#: Several gunicorn processes start, migrate and serve on a 2-core machine: more than the
#: suite's default per-test timeout.
pytestmark = pytest.mark.timeout(360)


class Pair:
    """Two processes, ``a`` and ``b``, each on a fake Telegram of its own (so a reply says
    which process sent it)."""

    def __init__(self, cluster: Cluster, fakes: tuple[FakeTelegram, FakeTelegram]) -> None:
        self.cluster = cluster
        self.fake_a, self.fake_b = fakes
        self.a, self.b = cluster.start(*fakes)

    def sent(self, chat_id: int) -> list[Any]:
        """What either process sent to ``chat_id``."""
        return [*self.fake_a.sent(chat_id=chat_id), *self.fake_b.sent(chat_id=chat_id)]

    def settled(self) -> None:
        eventually(lambda: self.cluster.settled([self.a, self.b]), "two fair shares", 60)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two processes shared by the tests below that need no more than two (each with users of
    its own; the one that pauses ``b`` runs last): two process starts instead of six."""
    with fresh_cluster(tmp_path_factory.mktemp("pair"), fakes=2) as (cluster, (a, b)):
        yield Pair(cluster, (a, b))


def test_gunicorn_with_three_workers_shares_the_partitions_and_the_connections_among_them(
    cluster: Cluster, fake_telegram: FakeTelegram
) -> None:
    # The release phase first (Procfile): concurrent auto-migration is issue 13's req. 6.
    migrated = subprocess.run([sys.executable, "-m", "yabot", "migrate"],
                              env=clean_env(cluster.env), cwd=cluster.tmp_path,
                              capture_output=True, timeout=scaled(120), check=False)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    node = Node({**cluster.env, "TELEGRAM_API_URL": fake_telegram.url}, cluster.tmp_path,
                "workers", gunicorn=True, webhook_secret=WEBHOOK_SECRET, args=("-w", "3"))
    cluster.nodes.append(node)
    eventually(node.ready, "gunicorn -w 3 serves", START_CEILING)

    def three_owners() -> bool:
        owners = cluster.owners()
        return len(owners) == PARTITIONS and len(set(owners.values())) == 3

    eventually(three_owners, "every worker owns a share", 60)
    users = range(8001, 8013)

    def delivered(update: dict[str, Any]) -> bool:
        # /readyz answered from one worker; another may still be starting its bot, and
        # answers 503 until then, which Telegram retries — so does this test.
        status = node.post(update).status
        assert status in (200, 503), status
        return status == 200

    for user in users:
        update = message(user, "/start", update_id=user)
        eventually(lambda update=update: delivered(update),  # type: ignore[misc]
                   f"update {user} accepted")
    eventually(lambda: all(len(fake_telegram.sent(chat_id=u)) == 1 for u in users),
               "every update handled by its owner, once")
    # Each worker runs a relay on the one outbox; the relay lock lets one send at a time.
    eventually(lambda: cluster.outbox_rows() == 0, "the outbox relayed")
    published = cluster.published_event_ids()
    assert len(published) >= len(users)  # at least one event per new user
    copies = len(published) - len(set(published))
    assert copies == 0, f"{copies} events were published more than once"
    # Keep-alive connections opened together (Telegram's webhook, a proxy's pool) reach
    # every worker: each worker listens on its own socket (SO_REUSEPORT) and the kernel
    # spreads them. On one shared socket the worker that woke first took them all. (32 over
    # 3 spread by hash: all on two workers once in about 100,000 runs.)
    answering = workers_answering(node, 32)
    assert len(set(answering)) == 3, sorted(answering)


def workers_answering(node: Node, connections: int) -> list[str]:
    """The worker (its node name, from ``/readyz``) on each of ``connections`` connections
    to ``node``, opened at once (as an asyncio client or a proxy's pool opens them), each
    asked once all are open."""
    host, port = node.url.removeprefix("http://").rsplit(":", 1)

    async def ask_all() -> list[str]:
        opened = await asyncio.gather(*(asyncio.open_connection(host, int(port))
                                        for _ in range(connections)))
        names = []
        try:
            for reader, writer in opened:
                writer.write(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = json.loads(await reader.readexactly(length))
                names.append(str(body["checks"]["partitions"][0]["details"]["node"]))
        finally:
            for _, writer in opened:
                writer.close()
        return names

    return asyncio.run(asyncio.wait_for(ask_all(), scaled(30)))


def test_several_workers_without_redis_are_refused_with_one_line(tmp_path: Path) -> None:
    node = Node({"YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
                 "JWT_SECRET": TEST_JWT_SECRET}, tmp_path, "refused", gunicorn=True,
                args=("-w", "2"))
    try:
        exit_code = node.process.wait(scaled(90))
    finally:
        node.stop()
    assert exit_code == ExitCode.CONFIGURATION, node.log()
    assert "several workers need REDIS_URL" in node.log()


# The tests below share `pair`, last in the module so that its two processes stop as soon as
# they are done (a module fixture lives until the module's last test).


def test_a_write_through_one_process_is_read_back_at_once_through_another(pair: Pair) -> None:
    cluster, a, b = pair.cluster, pair.a, pair.b
    pair.settled()
    settings = load_settings(jwt=JwtSettings(secret=SecretStr(TEST_JWT_SECRET)))
    token = bearer(mint_token(settings, "tests", ["users:read", "users:write"]))
    users = [4001, 4002, 4003, 4004]  # in partitions of both processes, most likely
    for user in users:
        assert a.post(message(user, "/start", update_id=user)).status == 200
    eventually(lambda: all(pair.sent(u) for u in users), "users created")
    owners = {partition_of(u, PARTITIONS) in cluster.owned_by(a) for u in users}
    assert owners == {True, False}, "the users should be spread over both processes"
    matches = 0
    for n in range(100):
        user = users[n % len(users)]
        language = "es" if n % 2 else "en"
        put = request("PUT", f"{a.url}/user/{user}/preferences", headers={
            **token, "Content-Type": "application/json"},
            body=json.dumps({"language": language, "notifications": True}).encode())
        assert put.status == 200, put.body
        got = request("GET", f"{b.url}/user/{user}/state", headers=token)
        assert got.status == 200, got.body
        matches += got.json()["preferences"]["language"] == language
    assert matches == 100
    # A problem from the owner reaches the client unchanged through the other process.
    missing = [request("GET", f"{node.url}/user/4999/state", headers=token) for node in (a, b)]
    assert [r.status for r in missing] == [404, 404]
    assert missing[0].json() == missing[1].json()
    metrics = [request("GET", f"{node.url}/metrics").body.decode() for node in (a, b)]
    forwarded = [_metric(text, 'yabot_forwarded_asks_total{direction="sent"}')
                 for text in metrics]
    # a forwarded the PUTs for b's users, b the GETs for a's: one of the two per round.
    assert sum(forwarded) >= 100
    owned = [_metric(text, "yabot_partitions_owned") for text in metrics]
    assert sum(owned) == PARTITIONS


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def test_transfers_across_owners_keep_balances_ledger_and_each_users_seq(pair: Pair) -> None:
    cluster, a, b = pair.cluster, pair.a, pair.b
    pair.settled()
    settings = load_settings(jwt=JwtSettings(secret=SecretStr(TEST_JWT_SECRET)))
    token = bearer(mint_token(settings, "tests", ["users:read", "besitos:write"]))
    a_owned = cluster.owned_by(a)
    giver = next(u for u in range(9001, 9100) if partition_of(u, PARTITIONS) in a_owned)
    taker = next(u for u in range(9101, 9200) if partition_of(u, PARTITIONS) not in a_owned)
    for user in (giver, taker):
        assert a.post(message(user, "/start", update_id=user)).status == 200
    eventually(lambda: all(pair.sent(u) for u in (giver, taker)),
               "both users created")

    def transact(node: Node, user: int, key: str, **body: Any) -> dict[str, Any]:
        response = request("POST", f"{node.url}/user/{user}/besitos", headers={
            **token, "Content-Type": "application/json", "Idempotency-Key": key},
            body=json.dumps(body).encode())
        assert response.status == 200, response.body
        answer: dict[str, Any] = response.json()
        return answer

    transact(b, giver, "earn-1", kind="earn", amount=100)  # through the non-owner
    jobs = [(a if n % 2 else b, f"t-{n}") for n in range(20)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: transact(job[0], giver, job[1], kind="transfer",
                                                     amount=3, to_user_id=taker), jobs))
    assert all(r["applied"] for r in results)
    again = transact(a, giver, "t-0", kind="transfer", amount=3, to_user_id=taker)
    assert again["applied"] is False  # one effect per key, whichever process replays it

    def balance(node: Node, user: int) -> int:
        state = request("GET", f"{node.url}/user/{user}/state", headers=token).json()
        return int(state["besitos"])

    assert [balance(n, giver) for n in (a, b)] == [100 - 60] * 2
    assert [balance(n, taker) for n in (a, b)] == [60] * 2
    eventually(lambda: len(cluster.events_by_user().get(taker, [])) >= 21,
               "the taker's credit events published")
    for user in (giver, taker):
        seqs = cluster.events_by_user()[user]
        assert len(seqs) == len(set(seqs)), f"user {user}'s seq repeated: {seqs}"
    assert "another user's session not told" not in a.log() + b.log()


def test_a_paused_owner_handles_nothing_of_the_partitions_it_lost(pair: Pair) -> None:
    cluster, a, b, fake_a, fake_b = pair.cluster, pair.a, pair.b, pair.fake_a, pair.fake_b
    pair.settled()
    b_partitions = cluster.owned_by(b)
    user = next(u for u in range(5000, 6000) if partition_of(u, PARTITIONS) in b_partitions)
    updates = notes(user, 6)
    release = fake_b.hold("sendMessage")
    assert b.post(updates[0]).status == 200
    eventually(lambda: fake_b.in_progress == 1, "b is handling the first update")
    for update in updates[1:3]:
        assert b.post(update).status == 200  # queued behind it in b's lane
    logged_before_pause = len(b.log())
    b.signal(signal.SIGSTOP)
    try:
        eventually(lambda: cluster.settled([a]), "a owns every partition",
                   TAKEOVER_BOUND * 4)
        for update in updates[3:]:
            assert a.post(update).status == 200
        expected = [u["update_id"] for u in updates]
        eventually(lambda: set(replied_to(fake_a, user)) == set(expected),
                   "a handled every update of the user", 60)
        release.set()
    finally:
        b.signal(signal.SIGCONT)
    eventually(lambda: "partitions lost" in b.log()[logged_before_pause:],
               "b noticed its loss", 60)
    eventually(b.ready, "b serves again", 60)
    # What b had started before the pause may finish (its reply was already on its way);
    # nothing else of the partitions it lost.
    assert set(replied_to(fake_b, user)) <= {updates[0]["update_id"]}
    assert list(dict.fromkeys(replied_to(fake_a, user))) == expected
