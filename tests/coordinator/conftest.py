from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.support import stores_on
from yabot.stores.handles import Stores


@pytest.fixture(params=["sqlite", "mongomock"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Relational on SQLite; documents on the `sql` backend (same file) or mongomock."""
    with stores_on(request.param, request, tmp_path) as stores:
        yield stores
