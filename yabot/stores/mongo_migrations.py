"""MongoDB migrations: a numbered list of idempotent steps and a version document.

The version lives in ``schema_migrations`` as ``{"_id": "yabot", "version": N}``. Each step has
an ``up`` and a ``down``; both are idempotent, so a step interrupted half-way is simply run
again. Steps only ever *add* in ``up`` (expand); removing what old code still reads is a later
step once no old code runs (contract) — see README, "Stores".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pymongo.database import Database
from pymongo.errors import OperationFailure

from yabot.domain.users import utcnow
from yabot.stores.schemas import COLLECTIONS
from yabot.stores.schemas.history import MONEY_UNBOUNDED_V3, VALIDATORS_V1

log = structlog.get_logger("yabot.stores.mongo_migrations")

Document = dict[str, Any]
VERSIONS = "schema_migrations"
VERSION_ID = "yabot"
INDEX_NOT_FOUND = 27  # MongoDB's IndexNotFound: dropping an absent index is a no-op here


@dataclass(frozen=True)
class MongoStep:
    number: int
    description: str
    up: Callable[[Database[Document]], None]
    down: Callable[[Database[Document]], None]

    def __str__(self) -> str:
        return f"{self.number} {self.description}"


def _set_validators(db: Database[Document], validators: dict[str, dict[str, Any]]) -> None:
    existing = set(db.list_collection_names())
    for name, validator in validators.items():
        options: dict[str, Any] = {"validator": validator, "validationLevel": "strict",
                                   "validationAction": "error"}
        if name in existing:
            db.command("collMod", name, **options)
        else:
            db.create_collection(name, **options)


def _current_validators() -> dict[str, dict[str, Any]]:
    return {schema.name: schema.validator for schema in COLLECTIONS}


def _drop_validators(db: Database[Document]) -> None:
    existing = set(db.list_collection_names())
    for schema in COLLECTIONS:
        if schema.name in existing:
            db.command("collMod", schema.name, validator={}, validationLevel="off")


def _create_indexes(db: Database[Document]) -> None:
    for schema in COLLECTIONS:
        db[schema.name].create_indexes(schema.indexes)


def _drop_indexes(db: Database[Document]) -> None:
    for schema in COLLECTIONS:
        for name in schema.index_names:
            try:
                db[schema.name].drop_index(name)
            except OperationFailure as exc:
                if exc.code != INDEX_NOT_FOUND and "index not found" not in str(exc):
                    raise


STEPS: tuple[MongoStep, ...] = (
    MongoStep(1, "collections with $jsonSchema validators",
              lambda db: _set_validators(db, VALIDATORS_V1), _drop_validators),
    MongoStep(2, "unique and lookup indexes", _create_indexes, _drop_indexes),
    # Expand only: every document valid under step 1 is valid under these.
    MongoStep(3, "validators: localized fragments, preferences, ledger request and mark",
              lambda db: _set_validators(db, _current_validators()),
              lambda db: _set_validators(db, VALIDATORS_V1)),
    # Expand only, for every balance the domain could hold: MAX_BESITOS (2^53 - 1) on
    # balances and ledger amounts; a document past it (an overflow before this step) makes
    # the next write to it fail validation until it is corrected.
    MongoStep(4, "validators: balances and ledger amounts at most MAX_BESITOS (api)",
              lambda db: _set_validators(db, _current_validators_of(MONEY_UNBOUNDED_V3)),
              lambda db: _set_validators(db, MONEY_UNBOUNDED_V3)),
)


def _current_validators_of(names: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: validator for name, validator in _current_validators().items()
            if name in names}


def mongo_head() -> int:
    return STEPS[-1].number


def mongo_current(db: Database[Document]) -> int:
    found = db[VERSIONS].find_one({"_id": VERSION_ID})
    return int(found["version"]) if found is not None else 0


def _record(db: Database[Document], version: int) -> None:
    db[VERSIONS].update_one({"_id": VERSION_ID},
                            {"$set": {"version": version, "updated_at": utcnow()}}, upsert=True)


def mongo_pending(db: Database[Document], to: int | None = None) -> list[MongoStep]:
    """Steps an upgrade to ``to`` (default: the last) would run, in order."""
    current, target = mongo_current(db), mongo_head() if to is None else to
    return [step for step in STEPS if current < step.number <= target]


def mongo_upgrade(db: Database[Document], to: int | None = None) -> list[MongoStep]:
    """Run pending steps, recording the version after each; return what ran."""
    ran = []
    for step in mongo_pending(db, to):
        step.up(db)
        _record(db, step.number)
        log.info("mongo migration applied", step=str(step))
        ran.append(step)
    return ran


def mongo_downgrade(db: Database[Document], to: int) -> list[MongoStep]:
    """Undo steps above ``to`` (0: all), newest first; return what was undone."""
    current = mongo_current(db)
    undone = []
    for step in reversed(STEPS):
        if to < step.number <= current:
            step.down(db)
            _record(db, step.number - 1)
            log.info("mongo migration reverted", step=str(step))
            undone.append(step)
    return undone


def mongo_problems(db: Database[Document]) -> list[str]:
    """What is missing compared to `yabot.stores.schemas`, by name (empty: all present)."""
    problems = []
    options = {info["name"]: info.get("options", {}) for info in db.list_collections()}
    for schema in COLLECTIONS:
        if schema.name not in options:
            problems.append(f"collection missing: {schema.name}")
            continue
        if options[schema.name].get("validator") != schema.validator:
            problems.append(f"validator missing or different: {schema.name}")
        present = set(db[schema.name].index_information())
        problems += [f"index missing: {schema.name}.{name}"
                     for name in sorted(schema.index_names - present)]
    return problems
