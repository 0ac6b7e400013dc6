from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from tests.conftest import POSTGRES_TEST_URL
from tests.services.support import stores_on
from yabot.stores.handles import Stores


@pytest.fixture(params=["sqlite", "mongomock"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Relational on SQLite; documents on the `sql` backend (same file) or mongomock."""
    with stores_on(request.param, request, tmp_path) as stores:
        yield stores


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A schema of its own on the test PostgreSQL (the app migrates it), dropped afterwards;
    skip if no server answers."""
    admin = sqlalchemy.create_engine(POSTGRES_TEST_URL)
    try:
        with admin.connect():
            pass
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_TEST_URL} "
                    f"({type(exc).__name__}); start it or set POSTGRES_TEST_URL")
    schema = f"yabot_race_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    url = sqlalchemy.engine.make_url(POSTGRES_TEST_URL).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
