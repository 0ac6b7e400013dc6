"""`read_user_context`: one read of document + profile + newest subscription, on every
backend; `read_user_contexts`: the same for many users at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from tests.support.stores import DOCUMENT_BACKENDS, mongo_database, sql_engine
from yabot.domain.subscriptions import Plan, Subscription, SubscriptionStatus
from yabot.domain.users import UserDocument, UserProfile, utcnow
from yabot.stores.context import read_user_context, read_user_contexts
from yabot.stores.handles import RelationalRepositories, Stores
from yabot.stores.mongo import ensure_indexes, mongo_documents
from yabot.stores.sql import (
    SqlSubscriptions,
    SqlUserProfiles,
    read_latest_subscription,
    read_latest_subscriptions,
    read_profiles,
    sql_documents,
    sql_guard,
)


@pytest.fixture(params=DOCUMENT_BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Relational tables on SQL; documents on the same engine (sql) or on MongoDB."""
    with ExitStack() as stack:
        sql_kind = request.param if request.param in ("sqlite", "postgresql") else "sqlite"
        engine = stack.enter_context(sql_engine(sql_kind, request, tmp_path))
        guard = sql_guard()
        stores = Stores()
        stores.attach_relational(RelationalRepositories(
            engine, SqlUserProfiles(engine, guard), SqlSubscriptions(engine, guard), guard))
        if request.param in ("sqlite", "postgresql"):
            stores.attach_documents(sql_documents(engine, guard))
        else:
            db = stack.enter_context(mongo_database(request.param))
            ensure_indexes(db)
            stores.attach_documents(mongo_documents(db))
        yield stores


def test_reads_every_part_of_a_user(stores: Stores) -> None:
    now = utcnow()
    document = UserDocument(user_id=5, language="es", besitos=12, inventory=("rose",))
    profile = UserProfile(user_id=5, first_name="Ana")
    stores.documents.users.create_if_absent(document)
    stores.relational.profiles.create_if_absent(profile)
    subscription = stores.relational.subscriptions.start(Subscription(
        user_id=5, plan=Plan.VIP, starts_at=now, ends_at=now + timedelta(days=30)))

    context = read_user_context(stores, 5)

    assert context.document == document
    assert context.profile == profile
    assert context.subscription == subscription


def test_the_subscription_read_is_the_newest_whatever_its_status_and_only_this_users(
    stores: Stores,
) -> None:
    now = utcnow()
    subscriptions = stores.relational.subscriptions
    for user_id in (8, 9):
        stores.documents.users.create_if_absent(UserDocument(user_id=user_id))
        stores.relational.profiles.create_if_absent(UserProfile(user_id=user_id,
                                                                first_name="Ana"))
    first = subscriptions.start(Subscription(user_id=8, plan=Plan.VIP, starts_at=now,
                                             ends_at=now + timedelta(days=30)))
    newest = subscriptions.start(Subscription(user_id=8, plan=Plan.VIP, starts_at=now,
                                              ends_at=now + timedelta(days=60)))
    cancelled = subscriptions.set_status(newest.id or 0, SubscriptionStatus.CANCELLED)
    subscriptions.start(Subscription(user_id=9, plan=Plan.VIP, starts_at=now,
                                     ends_at=now + timedelta(days=90)))  # a later id, user 9's

    context = read_user_context(stores, 8)

    assert cancelled is not None
    assert (newest.id or 0) > (first.id or 0)
    assert context.subscription == cancelled


def test_a_user_with_only_a_document_reads_without_the_rest(stores: Stores) -> None:
    document, _ = stores.documents.users.create_if_absent(UserDocument(user_id=6))

    context = read_user_context(stores, 6)

    assert context.document == document
    assert (context.profile, context.subscription) == (None, None)


def test_an_unknown_user_reads_as_nothing(stores: Stores) -> None:
    context = read_user_context(stores, 404)

    assert (context.document, context.profile, context.subscription) == (None, None, None)


def test_the_relational_reads_share_one_connection(stores: Stores) -> None:
    """The point of the reader (issue 4's benchmark): one pool checkout, not one per part."""
    checkouts: list[object] = []

    def on_checkout(dbapi_connection: object, *_: object) -> None:
        checkouts.append(dbapi_connection)

    engine = stores.relational.engine
    event.listen(engine, "checkout", on_checkout)
    try:
        read_user_context(stores, 7)
    finally:
        event.remove(engine, "checkout", on_checkout)
    assert len(checkouts) == 1


def test_many_users_read_at_once_read_as_each_does_alone(
    stores: Stores, monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = utcnow()
    subscriptions = stores.relational.subscriptions
    for user_id in (1, 2, 3):
        stores.documents.users.create_if_absent(UserDocument(user_id=user_id, besitos=user_id))
    for user_id in (1, 2):  # user 3: a document only
        stores.relational.profiles.create_if_absent(UserProfile(user_id=user_id,
                                                                first_name="Ana"))
    subscriptions.start(Subscription(user_id=1, plan=Plan.VIP, starts_at=now,
                                     ends_at=now + timedelta(days=30)))
    later = subscriptions.start(Subscription(user_id=1, plan=Plan.VIP, starts_at=now,
                                             ends_at=now + timedelta(days=60)))

    alone = {user_id: read_user_context(stores, user_id) for user_id in (1, 2, 3)}
    with monkeypatch.context() as patched:  # in bulk: never a read per user
        patched.setattr(stores.documents.users, "get", None)
        contexts = read_user_contexts(stores, [1, 2, 3, 404])

    assert set(contexts) == {1, 2, 3}  # no document, no context
    assert contexts == alone
    assert contexts[1].subscription == later
    assert (contexts[3].profile, contexts[3].subscription) == (None, None)
    assert read_user_contexts(stores, []) == {}


def test_a_context_read_at_once_differs_after_any_part_of_it_changes(stores: Stores) -> None:
    """What renewing a held context relies on: equal contexts mean nothing changed."""
    stores.documents.users.create_if_absent(UserDocument(user_id=1))
    stores.relational.profiles.create_if_absent(UserProfile(user_id=1, first_name="Ana"))
    held = read_user_context(stores, 1)
    assert read_user_contexts(stores, [1]) == {1: held}

    stores.documents.ledger.credit(1, 5, "gift-1", "gift")  # the balance: its own column
    assert read_user_contexts(stores, [1])[1] != held
    held = read_user_context(stores, 1)
    stores.relational.subscriptions.start(Subscription(
        user_id=1, plan=Plan.VIP, starts_at=utcnow(), ends_at=utcnow() + timedelta(days=1)))
    assert read_user_contexts(stores, [1])[1] != held


def test_the_relational_parts_of_many_users_read_at_once(stores: Stores) -> None:
    """What the bulk read takes from SQL when the documents live elsewhere (MongoDB)."""
    now = utcnow()
    subscriptions = stores.relational.subscriptions
    for user_id in (1, 2, 3):  # user 4: nothing
        stores.relational.profiles.create_if_absent(UserProfile(user_id=user_id,
                                                                first_name=f"u{user_id}"))
    for days in (30, 60):
        subscriptions.start(Subscription(user_id=1, plan=Plan.VIP, starts_at=now,
                                         ends_at=now + timedelta(days=days)))
    subscriptions.start(Subscription(user_id=3, plan=Plan.VIP, starts_at=now,
                                     ends_at=now + timedelta(days=90)))

    with stores.relational.engine.connect() as conn:
        profiles = read_profiles(conn, [1, 2, 3, 4])
        latest = read_latest_subscriptions(conn, [1, 2, 3, 4])
        expected = {user_id: read_latest_subscription(conn, user_id) for user_id in (1, 3)}

    assert profiles == {user_id: stores.relational.profiles.get(user_id)
                        for user_id in (1, 2, 3)}
    assert latest == expected
    assert latest[1].ends_at == now + timedelta(days=60)
