"""`Stores`: the repositories currently served by the store actors, readable from any thread."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from yabot.errors import StoreUnavailable
from yabot.stores.guard import StoreGuard
from yabot.stores.repositories import (
    BesitosLedger,
    ItemCatalogue,
    NarrativeFragments,
    Subscriptions,
    UserDocuments,
    UserProfiles,
    UserProgress,
)


@dataclass(frozen=True)
class RelationalRepositories:
    engine: Engine
    profiles: UserProfiles
    subscriptions: Subscriptions
    guard: StoreGuard  # shared with the `sql` document backend


@dataclass(frozen=True)
class DocumentRepositories:
    backend: str  # "mongo" or "sql"
    users: UserDocuments
    fragments: NarrativeFragments
    items: ItemCatalogue
    ledger: BesitosLedger
    progress: UserProgress
    engine: Engine | None = None  # the SQL engine the `sql` backend keeps documents on


class Stores:
    """Where sessions find repositories.

    The store actors attach their repositories when they start and detach them when they
    stop, so a restarted store is picked up without anyone caching a stale pool. Reading an
    attribute is atomic in CPython; no lock is needed on this hot path.
    """

    def __init__(self) -> None:
        self._relational: RelationalRepositories | None = None
        self._documents: DocumentRepositories | None = None

    def attach_relational(self, repositories: RelationalRepositories | None) -> None:
        self._relational = repositories

    def attach_documents(self, repositories: DocumentRepositories | None) -> None:
        self._documents = repositories

    @property
    def relational(self) -> RelationalRepositories:
        current = self._relational
        if current is None:
            raise StoreUnavailable("the SQL store is not running")
        return current

    @property
    def documents(self) -> DocumentRepositories:
        current = self._documents
        if current is None:
            raise StoreUnavailable("the document store is not running")
        return current
