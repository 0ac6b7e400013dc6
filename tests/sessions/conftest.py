"""Sessions without the tree, on real stores with the seed story loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sessions.support import Sessions
from tests.support.actors import actor_kit
from tests.support.stores import stores_on
from yabot.seed import load_seed


@pytest.fixture(params=["sqlite", "mongomock"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sessions]:
    """Sessions without the tree on real stores (documents on SQLite or mongomock), the seed
    story loaded."""
    with stores_on(request.param, request, tmp_path) as stores, actor_kit() as kit:
        load_seed(stores)
        yield Sessions(kit, stores)
