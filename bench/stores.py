"""Stores: repositories vs raw SQLAlchemy / pymongo doing the same work, in the same run.

- reading a user context (document + profile + newest subscription): through
  `read_user_context` (what `UserService` calls: one joined statement) vs the same join
  written as SQL text and run on the driver, on SQLite; a user document on mongomock through
  its repository vs raw pymongo;
- a besitos debit (conditional UPDATE … RETURNING + ledger INSERT in one transaction) through
  `SqlBesitosLedger` vs the same statements written by hand.

The raw baselines are written as well as we know how (statements built once, bound
parameters, the context's three parts joined in one statement), so a ratio is the
repositories' real cost: the guard and pydantic validation.

Targets (issue 4): repository throughput ≥ 0.8 of raw (raw median / repository median).
"""

from __future__ import annotations

import itertools
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, insert, update

from bench.report import Check, Report, interleaved, summarise
from tests.support import mongomock_gaps
from yabot.domain.subscriptions import Plan, Subscription
from yabot.domain.users import UserDocument, UserProfile
from yabot.stores.context import read_user_context
from yabot.stores.engine import make_engine
from yabot.stores.handles import RelationalRepositories, Stores
from yabot.stores.migrate import sql_upgrade
from yabot.stores.mongo import mongo_documents
from yabot.stores.mongo_migrations import mongo_upgrade
from yabot.stores.sql import SqlSubscriptions, SqlUserProfiles, sql_documents, sql_guard
from yabot.stores.tables import besitos_ledger, user_documents

USER = 42
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGET = 0.8


def _seed(engine: Engine) -> tuple[Any, SqlUserProfiles, SqlSubscriptions]:
    documents = sql_documents(engine)
    profiles = SqlUserProfiles(engine)
    subs = SqlSubscriptions(engine)
    documents.users.create_if_absent(UserDocument(user_id=USER, besitos=10**12))
    profiles.create_if_absent(UserProfile(user_id=USER, first_name="Bench"))
    subs.start(Subscription(user_id=USER, plan=Plan.VIP, starts_at=T0,
                            ends_at=T0 + timedelta(days=30)))
    return documents, profiles, subs


# The raw baselines at their best: the user's context as one statement written by hand and
# run on the driver (as `read_user_context` reads it: document, profile and newest
# subscription joined), rows turned into the same pydantic models.
_CONTEXT = """
SELECT d.document, d.besitos, p.user_id, p.first_name, p.username, p.language_code,
       p.created_at, s.id, s.plan, s.status, s.starts_at, s.ends_at, s.updated_at
FROM user_documents d
LEFT JOIN user_profiles p ON p.user_id = d.user_id
LEFT JOIN subscriptions s ON s.id = (SELECT id FROM subscriptions
                                     WHERE user_id = d.user_id ORDER BY id DESC LIMIT 1)
WHERE d.user_id = ?
"""
_DEBIT = (
    update(user_documents)
    .where(user_documents.c.user_id == bindparam("uid"),
           user_documents.c.besitos >= bindparam("n"))
    .values(besitos=user_documents.c.besitos - bindparam("n"))
    .returning(user_documents.c.besitos)
)
_RECORD = insert(besitos_ledger)


def _raw_sql_context(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        row = conn.exec_driver_sql(_CONTEXT, (USER,)).first()
    assert row is not None
    (document, besitos, user_id, first_name, username, language_code, created_at,
     subscription_id, plan, status, starts_at, ends_at, updated_at) = row
    return (
        UserDocument.model_validate({**json.loads(document), "besitos": besitos}),
        UserProfile.model_validate({"user_id": user_id, "first_name": first_name,
                                    "username": username, "language_code": language_code,
                                    "created_at": created_at}),
        Subscription.model_validate({"id": subscription_id, "user_id": user_id, "plan": plan,
                                     "status": status, "starts_at": starts_at,
                                     "ends_at": ends_at, "updated_at": updated_at}),
    )


def _raw_sql_debit(engine: Engine, key: str) -> int | None:
    with engine.begin() as conn:
        after: int | None = conn.execute(_DEBIT, {"uid": USER, "n": 1}).scalar_one_or_none()
        conn.execute(_RECORD, {"key": key, "user_id": USER, "amount": -1,
                               "balance_after": after, "reason": "",
                               "created_at": datetime.now(UTC)})
    return after


def run(quick: bool = False) -> Report:
    rounds, per_round = (4, 200) if quick else (10, 1000)
    report = Report("stores")
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'bench.sqlite3'}")
        sql_upgrade(engine)
        documents, profiles, subs = _seed(engine)
        stores = Stores()
        guard = sql_guard()
        stores.attach_relational(RelationalRepositories(engine, profiles, subs, guard))
        stores.attach_documents(sql_documents(engine, guard))

        def repo_context() -> object:
            return read_user_context(stores, USER)

        client = mongomock_gaps.client()
        db = client["bench"]
        mongo_upgrade(db)
        mongo = mongo_documents(db)
        mongo.users.create_if_absent(UserDocument(user_id=USER, besitos=10**12))

        def mongo_repo_read() -> object:
            return mongo.users.get(USER)

        def mongo_raw_read() -> object:
            found = db.users.find_one({"user_id": USER}, projection={"_id": False})
            return UserDocument.model_validate(found)

        repo_keys = (f"r{n}" for n in itertools.count())
        raw_keys = (f"w{n}" for n in itertools.count())
        samples = interleaved(
            {
                "sqlite context: raw SQLAlchemy": lambda: _raw_sql_context(engine),
                "sqlite context: read_user_context": repo_context,
                "mongomock user: raw pymongo + model": mongo_raw_read,
                "mongomock user: repository": mongo_repo_read,
                "sqlite debit: raw SQLAlchemy": lambda: _raw_sql_debit(engine, next(raw_keys)),
                "sqlite debit: SqlBesitosLedger":
                    lambda: documents.ledger.debit(USER, 1, next(repo_keys)),
            },
            rounds, per_round,
        )
        engine.dispose()
        client.close()
    report.measurements = [summarise(name, s) for name, s in samples.items()]
    by_name = {m.name: m for m in report.measurements}
    for raw, repo in [
        ("sqlite context: raw SQLAlchemy", "sqlite context: read_user_context"),
        ("mongomock user: raw pymongo + model", "mongomock user: repository"),
        ("sqlite debit: raw SQLAlchemy", "sqlite debit: SqlBesitosLedger"),
    ]:
        raw_median, repo_median = by_name[raw].median_us, by_name[repo].median_us
        assert raw_median is not None
        assert repo_median is not None
        ratio = raw_median / repo_median  # = repository throughput / raw throughput
        report.checks.append(Check(f"{repo} throughput / {raw}", round(ratio, 3),
                                   f">= {TARGET}", ratio >= TARGET))
    return report
