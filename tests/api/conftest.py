"""The API tests' server: one real gunicorn per test module (tests/support/api.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api import ServedApi, served_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    """One server per test module (gunicorn takes about a second to start)."""
    with served_api(tmp_path_factory.mktemp("api")) as served:
        yield served
