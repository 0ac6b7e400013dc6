"""Stores: repositories vs raw SQLAlchemy / pymongo doing the same work, in the same run.

- reading a user context (document + profile + active subscription): through
  `read_user_context` (what `UserService` calls) vs the same three reads as raw calls on one
  connection, on SQLite; a user document on mongomock through its repository vs raw pymongo;
- a besitos debit (conditional UPDATE … RETURNING + ledger INSERT in one transaction) through
  `SqlBesitosLedger` vs the same statements written by hand.

The raw baselines are written as well as we know how (statements built once, bound
parameters, one connection for the three reads), so a ratio is the repositories' real cost:
the guard and pydantic validation.

Targets (issue 4): repository throughput ≥ 0.8 of raw (raw median / repository median).
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

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
from yabot.stores.tables import besitos_ledger, subscriptions, user_documents, user_profiles

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


# The raw baselines at their best: statements built once with bound parameters, one
# connection for the three reads, rows turned into the same pydantic models.
_DOCUMENT = select(user_documents.c.document, user_documents.c.besitos).where(
    user_documents.c.user_id == bindparam("uid"))
_PROFILE = select(user_profiles).where(user_profiles.c.user_id == bindparam("uid"))
_SUBSCRIPTION = (
    select(subscriptions)
    .where(subscriptions.c.user_id == bindparam("uid"), subscriptions.c.status == "active")
    .order_by(subscriptions.c.id.desc()).limit(1)
)
_DEBIT = (
    update(user_documents)
    .where(user_documents.c.user_id == bindparam("uid"),
           user_documents.c.besitos >= bindparam("n"))
    .values(besitos=user_documents.c.besitos - bindparam("n"))
    .returning(user_documents.c.besitos)
)
_RECORD = insert(besitos_ledger)


def _raw_sql_context(engine: Engine) -> tuple[Any, ...]:
    parameters = {"uid": USER}
    with engine.connect() as conn:
        document = conn.execute(_DOCUMENT, parameters).first()
        profile = conn.execute(_PROFILE, parameters).mappings().first()
        subscription = conn.execute(_SUBSCRIPTION, parameters).mappings().first()
    assert document is not None
    return (
        UserDocument.model_validate({**document.document, "besitos": document.besitos}),
        UserProfile.model_validate(dict(profile or {})),
        Subscription.model_validate(dict(subscription or {})),
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
