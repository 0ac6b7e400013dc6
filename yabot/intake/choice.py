"""Which intake a process uses: Redis Streams with ``REDIS_URL``, else the SQL table."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable

from sqlalchemy import Engine

from yabot.intake.entries import Intake
from yabot.intake.redis import RedisIntake
from yabot.intake.sql import SqlIntake
from yabot.settings import Settings


def consumer_name() -> str:
    """This process's name among the readers of a consumer group: unique per incarnation,
    readable in ``XINFO CONSUMERS`` (host, pid, a random tail)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def build_intake(settings: Settings, engine: Callable[[], Engine],
                 consumer: str | None = None) -> Intake:
    """The intake for ``settings``; ``engine`` gives the relational store's current engine."""
    url = settings.redis.url
    if url is None:
        return SqlIntake(engine)
    scale = settings.scale
    return RedisIntake(url.get_secret_value(), scale.intake_key_prefix,
                       consumer or consumer_name(), scale.partitions,
                       scale.intake_redis_timeout)
