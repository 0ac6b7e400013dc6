"""Reading YABOT's event stream with a Redis consumer group: a minimal consumer.

    python docs/consume_events.py redis://127.0.0.1:6379/0 billing billing-1

One group per consuming service; each of its processes is one consumer. Delivery is at
least once: `handle` must be idempotent by ``event["event_id"]``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import redis

STREAM = "yabot:events"  # EVENTS_STREAM


def handle(event: dict[str, Any]) -> None:
    print(event["type"], event["user_id"], event["seq"], event["event_id"])


def consume(url: str, group: str, consumer: str) -> None:
    r = redis.Redis.from_url(url, decode_responses=True)
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: the group exists
        r.xgroup_create(STREAM, group, id="0", mkstream=True)
    # First what this consumer read before and did not acknowledge ("0"), then new entries.
    position = "0"
    while True:
        # [(stream, [(entry_id, {"body": json}), …])]; redis-py types it loosely.
        batches: Any = r.xreadgroup(group, consumer, {STREAM: position}, count=100,
                                    block=5000)
        if position == "0" and not any(entries for _stream, entries in batches or []):
            position = ">"
            continue
        for _stream, entries in batches or []:
            for entry_id, fields in entries:
                handle(json.loads(fields["body"]))
                r.xack(STREAM, group, entry_id)


if __name__ == "__main__":
    consume(*sys.argv[1:4])
