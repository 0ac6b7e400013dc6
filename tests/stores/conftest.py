"""Backend-parametrised fixtures for the repository contract suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.stores import DOCUMENT_BACKENDS, SQL_BACKENDS, mongo_database, sql_engine
from yabot.stores.handles import DocumentRepositories
from yabot.stores.mongo import ensure_indexes, mongo_documents
from yabot.stores.sql import sql_documents


@pytest.fixture(params=DOCUMENT_BACKENDS)
def document_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[
    DocumentRepositories
]:
    """Every document repository on one backend: sqlite, postgresql, mongomock, mongodb."""
    if request.param in ("sqlite", "postgresql"):
        with sql_engine(request.param, request, tmp_path) as engine:
            yield sql_documents(engine)
        return
    with mongo_database(request.param) as db:
        ensure_indexes(db)
        yield mongo_documents(db)


@pytest.fixture(params=SQL_BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A SQL engine with the schema created: sqlite (a file) or postgresql."""
    with sql_engine(request.param, request, tmp_path) as engine:
        yield engine
