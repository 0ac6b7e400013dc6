"""The `sql` document backend turns a constraint violation into `InvalidRecord` naming the
field, and writes nothing: on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from yabot.domain.users import UserDocument
from yabot.errors import InvalidRecord
from yabot.stores.sql import sql_documents
from yabot.stores.tables import user_documents


def count_documents(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(user_documents)).scalar_one())


def test_a_negative_balance_forced_past_the_model_is_refused_naming_besitos(
    engine: Engine,
) -> None:
    store = sql_documents(engine)
    # model_construct skips the model's own ``besitos >= 0``: the table's CHECK is what refuses.
    forced = UserDocument.model_construct(user_id=1, besitos=-5)
    with pytest.raises(InvalidRecord) as caught:
        store.users.create_if_absent(forced)
    assert caught.value.field == "besitos"
    assert store.users.get(1) is None
    assert count_documents(engine) == 0


def test_after_a_refused_document_the_same_user_can_be_created(engine: Engine) -> None:
    store = sql_documents(engine)
    with pytest.raises(InvalidRecord, match="besitos"):
        store.users.create_if_absent(UserDocument.model_construct(user_id=2, besitos=-1))
    valid = UserDocument(user_id=2, besitos=4)
    assert store.users.create_if_absent(valid) == (valid, True)
    assert store.ledger.debit(2, 4, "all").balance == 0
