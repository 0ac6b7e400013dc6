"""The intake on Redis Streams: one stream per partition, one consumer group.

``{prefix}:in:{p}`` holds partition ``p``'s accepted entries. Every process reads through the
consumer group ``{prefix}``, as a consumer of its own name, only the partitions it owns:
``XREADGROUP … >`` hands each new entry to one reader, in stream order; ``XACK`` + ``XDEL``
after it is handled keeps the stream as short as the backlog. An entry delivered and never
acknowledged (its reader crashed, paused or lost the partition) stays in the group's pending
list, and the next owner takes it over with ``XAUTOCLAIM`` before reading anything new.

An acknowledged append survives a Redis crash only as far as Redis persists it: run Redis
with ``appendonly yes`` (``appendfsync everysec`` loses at most a second, ``always`` nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from yabot.errors import StoreUnavailable
from yabot.intake.entries import Delivery, IntakeEntry

log = structlog.get_logger("yabot.intake")

TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
CLAIM_BATCH = 500


def stream_key(prefix: str, partition: int) -> str:
    return f"{prefix}:in:{partition}"


class RedisIntake:
    """`Intake` on Redis Streams with a consumer group (see the module docstring).

    ``consumer`` names this process in the group; it must be unique among live processes.
    """

    def __init__(self, url: str, prefix: str, consumer: str, partitions: int,
                 timeout: float = 2.0) -> None:
        self._prefix = prefix
        self._group = prefix
        self.consumer = consumer
        self._partitions = partitions
        # Fail fast: the caller (the webhook answering 503, the reader's backoff) decides
        # about retries; redis-py's own retries would hold a webhook thread for seconds.
        self._client = redis.Redis.from_url(url, socket_timeout=timeout,
                                            socket_connect_timeout=timeout,
                                            retry=Retry(NoBackoff(), 0))
        # Blocking reads get their own connection pool, with room for the block itself.
        self._reader = redis.Redis.from_url(url, socket_timeout=None,
                                            socket_connect_timeout=timeout,
                                            retry=Retry(NoBackoff(), 0))
        self._groups_made: set[int] = set()

    def _key(self, partition: int) -> str:
        return stream_key(self._prefix, partition)

    def _ensure_group(self, partition: int) -> None:
        if partition in self._groups_made:
            return
        try:
            self._client.xgroup_create(self._key(partition), self._group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_made.add(partition)

    def append(self, entries: Sequence[IntakeEntry]) -> None:
        if not entries:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(self._key(entry.partition), _fields(entry))
            pipe.execute()
        except TRANSIENT as exc:
            raise StoreUnavailable(f"the intake did not answer ({type(exc).__name__})") from exc

    def resume(self, partition: int) -> list[Delivery]:
        # min idle 0: the caller holds the partition's lease, so whoever had these entries
        # stopped handling them before the lease could pass here.
        return self.claim_stale(partition, 0)

    def claim_stale(self, partition: int, min_idle: float) -> list[Delivery]:
        self._ensure_group(partition)
        key = self._key(partition)
        taken: list[Delivery] = []
        start = "0-0"
        while True:
            reply: Any = self._client.xautoclaim(key, self._group, self.consumer,
                                                 int(min_idle * 1000), start_id=start,
                                                 count=CLAIM_BATCH)
            start = _text(reply[0])
            taken += [_delivery(partition, entry_id, fields) for entry_id, fields in reply[1]
                      if fields is not None]
            if start == "0-0":
                return taken

    def read(self, partitions: Sequence[int], count: int, block: float) -> list[Delivery]:
        if not partitions:
            return []
        for partition in partitions:
            self._ensure_group(partition)
        streams = {self._key(p): ">" for p in partitions}
        reply: Any = self._reader.xreadgroup(self._group, self.consumer, streams,  # type: ignore[arg-type]
                                             count=count, block=max(1, int(block * 1000)))
        found: list[Delivery] = []
        for key, entries in reply or []:
            partition = int(_text(key).rsplit(":", 1)[1])
            found += [_delivery(partition, entry_id, fields) for entry_id, fields in entries]
        return found

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        pipe = self._client.pipeline(transaction=False)
        for delivery in deliveries:
            key = self._key(delivery.entry.partition)
            pipe.xack(key, self._group, delivery.entry_id)
            pipe.xdel(key, delivery.entry_id)
        pipe.execute()

    def lag(self, partition: int) -> int:
        """Entries of ``partition`` in the stream: not yet acknowledged (acks delete)."""
        return int(self._client.xlen(self._key(partition)))

    def close(self) -> None:
        self._client.close()
        self._reader.close()


def _fields(entry: IntakeEntry) -> dict[FieldT, EncodableT]:
    return {"k": "" if entry.key is None else str(entry.key), "b": entry.body}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _delivery(partition: int, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Delivery:
    key = _text(fields.get(b"k", b""))
    return Delivery(entry_id=_text(entry_id), entry=IntakeEntry(
        partition=partition, key=int(key) if key else None, body=_text(fields[b"b"])))
