"""Several YABOT processes (gunicorn masters, `Node`) on one PostgreSQL + Redis, as the
cluster tests and the rolling restart drive them: starting, restarting in place, and reading
who owns what from Redis and from each process's ``/readyz``."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

from tests.bot.updates import message
from tests.support.bot import BOT_TOKEN, WEBHOOK_SECRET, WEBHOOK_URL
from tests.support.fake_telegram import FakeTelegram
from tests.support.nodes import Node
from tests.support.postgres import postgres_schema
from tests.support.redis_server import redis_prefix
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import START_CEILING, STOP_CEILING, eventually, scaled

PARTITIONS = 8
LEASE_TTL, LEASE_RENEW, LEASE_MARGIN = 3.0, 0.5, 0.5
#: The documented bound for a dead owner's partitions to be owned again.
TAKEOVER_BOUND = LEASE_TTL + LEASE_RENEW


class Cluster:
    """Nodes of one deployment: the same database, Redis prefix and lease timings."""

    def __init__(self, tmp_path: Path, postgres_url: str, redis_url: str, prefix: str) -> None:
        self.tmp_path = tmp_path
        self.prefix = prefix.rstrip(":")
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.env = {
            "YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
            "JWT_SECRET": TEST_JWT_SECRET, "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url, "INTAKE_KEY_PREFIX": self.prefix,
            "EVENTS_STREAM": f"{self.prefix}:events",
            "RATE_LIMIT_KEY_PREFIX": f"{self.prefix}:ratelimit",
            # One test client sends hundreds of requests a second on a quiet machine: the
            # default per-subject limit (100/second) would answer some with 429.
            "RATE_LIMIT_PER_SUBJECT": "1000000/minute",
            "PARTITIONS": str(PARTITIONS), "LEASE_TTL": str(LEASE_TTL),
            "LEASE_RENEW_INTERVAL": str(LEASE_RENEW),
            "LEASE_SAFETY_MARGIN": str(LEASE_MARGIN),
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "BOT_WEBHOOK_URL": WEBHOOK_URL,
            "BOT_WEBHOOK_SECRET": WEBHOOK_SECRET, "API_THREADS": "8",
        }
        self.nodes: list[Node] = []

    def start(self, *fakes: FakeTelegram) -> list[Node]:
        """One process per fake Telegram, started together (they migrate the schema under
        its lock), each answering /readyz before this returns."""
        nodes = [Node({**self.env, "TELEGRAM_API_URL": fake.url}, self.tmp_path,
                      f"node{len(self.nodes) + n}", gunicorn=True,
                      webhook_secret=WEBHOOK_SECRET) for n, fake in enumerate(fakes)]
        self.nodes += nodes
        for node in nodes:
            eventually(node.ready, f"{node.name} serves", START_CEILING)
        return nodes

    def restart(self, node: Node, fake: FakeTelegram,
                while_starting: Callable[[Node], object] = lambda _node: None) -> Node:
        """A rolling restart's step for one host: SIGTERM to the gunicorn master (as a
        process manager stops it), wait for it to exit by itself, start it again on the same
        port, call ``while_starting`` with the new `Node`, wait until it is ready. The new
        `Node` replaces ``node`` in `nodes`."""
        node.process.send_signal(signal.SIGTERM)
        exit_code = node.process.wait(scaled(STOP_CEILING))
        assert exit_code == 0, f"{node.name} exited with {exit_code}:\n{node.log()}"
        again = Node({**self.env, "TELEGRAM_API_URL": fake.url}, self.tmp_path,
                     f"{node.name}r", gunicorn=True, webhook_secret=WEBHOOK_SECRET,
                     port=node.port)
        self.nodes[self.nodes.index(node)] = again
        while_starting(again)
        eventually(again.ready, f"{again.name} serves again", START_CEILING)
        return again

    def owners(self) -> dict[int, str]:
        """partition → the node name holding its lease (from Redis itself)."""
        values = self.redis.mget([f"{self.prefix}:lease:{p}" for p in range(PARTITIONS)])
        return {p: str(v).split("|")[0] for p, v in enumerate(values) if v is not None}

    def owned_by(self, node: Node) -> list[int]:
        details = node.readiness()["checks"]["partitions"][0]["details"]
        owned = str(details["owned"])
        return [int(p) for p in owned.split(",")] if owned else []

    def node_name(self, node: Node) -> str:
        return str(node.readiness()["checks"]["partitions"][0]["details"]["node"])

    def settled(self, nodes: list[Node]) -> bool:
        """Every partition owned, by one of ``nodes``, in fair shares."""
        owners = self.owners()
        names = [self.node_name(n) for n in nodes]
        counts = [sum(1 for o in owners.values() if o == name) for name in names]
        return (len(owners) == PARTITIONS and set(owners.values()) <= set(names)
                and max(counts) - min(counts) <= 1)

    def events_by_user(self) -> dict[int, list[int]]:
        """Each user's seqs of the distinct events on the stream (by ``event_id``: the relay
        publishes at least once, so an event may appear twice after a relay died or paused
        mid-batch)."""
        seqs: dict[int, list[int]] = {}
        published: set[str] = set()
        for _, fields in self.redis.xrange(f"{self.prefix}:events") or []:
            assert fields is not None
            event = json.loads(fields["body"])
            if event["event_id"] in published:
                continue
            published.add(event["event_id"])
            seqs.setdefault(int(event["user_id"]), []).append(int(event["seq"]))
        return seqs

    def published_event_ids(self) -> list[str]:
        """Every entry's ``event_id`` on the events stream, in stream order (copies too)."""
        return [str(fields["event_id"])
                for _, fields in self.redis.xrange(f"{self.prefix}:events") or []
                if fields is not None]

    def outbox_rows(self) -> int:
        """Events stored and not yet relayed (the shared database's ``event_outbox``)."""
        engine = sqlalchemy.create_engine(self.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                return int(conn.execute(sqlalchemy.text(
                    "SELECT count(*) FROM event_outbox")).scalar_one())
        finally:
            engine.dispose()

    def stop(self) -> None:
        for node in self.nodes:
            node.terminate()  # all at once: their graceful stops overlap
        for node in self.nodes:
            node.stop()
        self.redis.close()



@contextlib.contextmanager
def fresh_cluster(tmp_path: Path, fakes: int) -> Iterator[tuple[Cluster, list[FakeTelegram]]]:
    """A `Cluster` on a PostgreSQL schema and a Redis prefix of its own (its processes migrate
    the schema from empty) and ``fakes`` fake Telegrams, each started; all of it stopped and
    dropped afterwards. A module fixture's: processes started once serve several tests."""
    with postgres_schema("yabot_fresh") as url, redis_prefix() as (redis_url, prefix):
        started = [FakeTelegram().start() for _ in range(fakes)]
        cluster = Cluster(tmp_path, url, redis_url, prefix)
        try:
            yield cluster, started
        finally:
            cluster.stop()
            for fake in started:
                fake.stop()

def notes(user: int, count: int) -> list[dict[str, Any]]:
    """``count`` notes of ``user``; update ids and message ids say who sent which one."""
    return [message(user, f"note {i}", update_id=user * 1000 + i, message_id=user * 1000 + i)
            for i in range(count)]


def replied_to(fake: FakeTelegram, user: int) -> list[int]:
    return [int(c.params["reply_parameters"]["message_id"]) for c in fake.sent(chat_id=user)
            if "reply_parameters" in c.params]
