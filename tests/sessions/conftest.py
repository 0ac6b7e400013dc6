"""The application's tree with the seed story loaded at start (SQLite file, no Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.support import stores_on
from tests.sessions.support import Sessions
from tests.support.actors import actor_kit
from tests.support.waiting import ASK
from yabot.domain.users import TelegramIdentity
from yabot.runtime import Runtime
from yabot.seed import load_seed
from yabot.sessions.messages import Start


def start_user(runtime: Runtime, user_id: int, language: str = "en") -> None:
    identity = TelegramIdentity(user_id=user_id, first_name=f"user{user_id}",
                                language_code=language)
    runtime.sessions.ask(user_id, Start(identity=identity), timeout=ASK)


@pytest.fixture(params=["sqlite", "mongomock"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sessions]:
    """Sessions without the tree on real stores (documents on SQLite or mongomock), the seed
    story loaded."""
    with stores_on(request.param, request, tmp_path) as stores, actor_kit() as kit:
        load_seed(stores)
        yield Sessions(kit, stores)
