"""The test PostgreSQL server: a fresh schema per user of it, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy

POSTGRES_TEST_URL = os.environ.get(
    "POSTGRES_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_schema(prefix: str = "yabot_test") -> Iterator[str]:
    """The URL of a new schema (``search_path`` set in the URL) on the test server, dropped
    with everything in it afterwards; skips the test when no server answers.

    A uniquely named schema per user keeps parallel workers (pytest-xdist) and concurrent
    test runs on one server apart."""
    admin = sqlalchemy.create_engine(POSTGRES_TEST_URL)
    try:
        with admin.connect():
            pass
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(
            f"PostgreSQL is not reachable at {POSTGRES_TEST_URL} ({type(exc).__name__}); "
            "start it or set POSTGRES_TEST_URL"
        )
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
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
