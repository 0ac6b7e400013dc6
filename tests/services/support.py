"""`Stores` on real backends for service, coordinator and session tests, and fault injection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.stores import mongo_database, sql_engine
from yabot.domain.users import TelegramIdentity
from yabot.services.users import UserService
from yabot.stores.handles import RelationalRepositories, Stores
from yabot.stores.mongo import ensure_indexes, mongo_documents
from yabot.stores.sql import SqlSubscriptions, SqlUserProfiles, sql_documents, sql_guard


@contextmanager
def stores_on(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Relational repositories on SQLite (a file), documents on ``backend``: ``sqlite``
    (the embedded `sql` backend, same file) or ``mongomock``; ``postgresql``: both on a
    fresh PostgreSQL schema."""
    relational = "postgresql" if backend == "postgresql" else "sqlite"
    with sql_engine(relational, request, tmp_path) as engine:
        stores = Stores()
        guard = sql_guard()
        stores.attach_relational(RelationalRepositories(
            engine, SqlUserProfiles(engine, guard), SqlSubscriptions(engine, guard), guard
        ))
        if backend in ("sqlite", "postgresql"):
            stores.attach_documents(sql_documents(engine, guard))
            yield stores
            return
        with mongo_database(backend) as db:
            ensure_indexes(db)
            stores.attach_documents(mongo_documents(db))
            yield stores


def create(stores: Stores, user_id: int, besitos: int = 0) -> None:
    """A user in both stores, with ``besitos`` credited under a setup key."""
    UserService(stores).create_user(TelegramIdentity(user_id=user_id, first_name=f"u{user_id}"))
    if besitos:
        stores.documents.ledger.credit(user_id, besitos, f"setup-{user_id}", "setup")


class InjectedFault(RuntimeError):
    """What an injected failure raises, so a test can tell it from a real one."""


class Failing:
    """Wraps a repository; ``method`` raises `InjectedFault` while ``when(*args)`` is true
    (``times`` at most, None: always). Everything else passes through."""

    def __init__(self, inner: Any, method: str, when: Any = None, times: int | None = None
                 ) -> None:
        self._inner = inner
        self._method = method
        self._when = when or (lambda *args, **kwargs: True)
        self._times = times
        self.raised = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != self._method:
            return attribute

        def failing(*args: Any, **kwargs: Any) -> Any:
            if self._when(*args, **kwargs) and (self._times is None or self.raised < self._times):
                self.raised += 1
                raise InjectedFault(f"injected failure of {name}")
            return attribute(*args, **kwargs)

        return failing


def inject_documents(stores: Stores, **repositories: Any) -> None:
    """Replace some document repositories of ``stores`` (e.g. ``ledger=Failing(...)``)."""
    stores.attach_documents(replace(stores.documents, **repositories))


def inject_relational(stores: Stores, **repositories: Any) -> None:
    stores.attach_relational(replace(stores.relational, **repositories))
