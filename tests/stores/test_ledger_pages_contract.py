"""The ledger history in pages (`BesitosLedger.page`), on every document backend."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from tests.support.stores import mongo_database
from yabot.domain.besitos import LedgerEntry
from yabot.domain.ledger_pages import LedgerPage, LedgerPosition, decode_cursor, encode_cursor
from yabot.domain.users import UserDocument
from yabot.errors import InvalidInput, Unprocessable
from yabot.stores.handles import DocumentRepositories
from yabot.stores.mongo import MongoBesitosLedger, ensure_indexes


def with_history(store: DocumentRepositories, user_id: int, changes: int) -> list[str]:
    """A user with ``changes`` applied changes (earns and spends); their keys, newest first."""
    store.users.create_if_absent(UserDocument(user_id=user_id, besitos=0))
    keys = []
    for n in range(changes):
        key = f"u{user_id}-{n}"
        if n % 3 == 2:
            assert store.ledger.debit(user_id, 1, key).applied
        else:
            assert store.ledger.credit(user_id, 2, key).applied
        keys.append(key)
    return keys[::-1]


def every_page(store: DocumentRepositories, user_id: int, limit: int) -> list[LedgerPage]:
    pages = [store.ledger.page(user_id, limit)]
    while (cursor := pages[-1].next_cursor) is not None:
        pages.append(store.ledger.page(user_id, limit, cursor))
        assert len(pages) <= 100, "the cursors do not end"
    return pages


@pytest.mark.parametrize(("changes", "limit"), [(23, 5), (10, 5), (3, 100), (1, 1)])
def test_paging_returns_every_entry_once_newest_first(
    document_store: DocumentRepositories, changes: int, limit: int
) -> None:
    newest_first = with_history(document_store, 1, changes)
    with_history(document_store, 2, 4)  # another user's entries never show
    pages = every_page(document_store, 1, limit)
    assert [entry.key for page in pages for entry in page.entries] == newest_first
    assert all(len(page.entries) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1].entries) <= limit
    balances = [entry.balance_after for page in pages for entry in page.entries]
    assert balances == [e.balance_after for e in document_store.ledger.entries(1, 1000)]


def test_an_empty_history_is_one_empty_page(document_store: DocumentRepositories) -> None:
    document_store.users.create_if_absent(UserDocument(user_id=1))
    assert document_store.ledger.page(1, 10) == LedgerPage(entries=(), next_cursor=None)


def test_changes_recorded_while_paging_do_not_shift_later_pages(
    document_store: DocumentRepositories,
) -> None:
    newest_first = with_history(document_store, 1, 9)
    first = document_store.ledger.page(1, 4)
    assert first.next_cursor is not None
    assert document_store.ledger.credit(1, 5, "while-paging").applied
    second = document_store.ledger.page(1, 4, first.next_cursor)
    assert second.next_cursor is not None
    third = document_store.ledger.page(1, 4, second.next_cursor)
    seen = [entry.key for page in (first, second, third) for entry in page.entries]
    assert seen == newest_first
    assert document_store.ledger.page(1, 1).entries[0].key == "while-paging"


def test_a_cursor_of_another_user_is_refused(document_store: DocumentRepositories) -> None:
    with_history(document_store, 1, 3)
    with_history(document_store, 2, 3)
    cursor = document_store.ledger.page(1, 1).next_cursor
    assert cursor is not None
    with pytest.raises(Unprocessable, match="cursor"):
        document_store.ledger.page(2, 1, cursor)


@pytest.mark.parametrize("cursor", ["not base64!", "A" * 300, "€uro", "a=b", ""])
def test_a_cursor_not_shaped_like_one_is_invalid_input(
    document_store: DocumentRepositories, cursor: str
) -> None:
    """400 at the API: not what its schema documents for ``cursor``."""
    with_history(document_store, 1, 3)
    with pytest.raises(InvalidInput, match="cursor") as caught:
        document_store.ledger.page(1, 2, cursor)
    assert not isinstance(caught.value, Unprocessable)


@pytest.mark.parametrize("cursor", ["x", "e30", "eyJ1IjoxfQ", "eyJ1IjoiMSIsImlkIjoxfQ",
                                    "eyJ1IjoxLCJpZCI6MSwieCI6MX0"])
def test_a_well_formed_cursor_this_backend_did_not_write_is_unprocessable(
    document_store: DocumentRepositories, cursor: str
) -> None:
    """Not base64 of JSON, ``{}``, a position without its place, a user id as a string, an
    unknown field: 422 at the API (valid by its schema), never a query."""
    with_history(document_store, 1, 3)
    with pytest.raises(Unprocessable, match="cursor"):
        document_store.ledger.page(1, 2, cursor)


def test_the_cursor_of_one_backend_is_refused_by_the_other(
    document_store: DocumentRepositories,
) -> None:
    with_history(document_store, 1, 3)
    cursor = document_store.ledger.page(1, 1).next_cursor
    assert cursor is not None
    position = decode_cursor_json(cursor)
    sql_shaped = "at" not in position
    foreign: dict[str, object] = ({"u": 1, "at": "2026-01-01T00:00:00Z", "id": "0" * 24}
                                  if sql_shaped else {"u": 1, "id": 7})
    with pytest.raises(Unprocessable, match="cursor"):
        document_store.ledger.page(1, 2, encode_json(foreign))


def test_entries_recorded_in_the_same_millisecond_page_by_id() -> None:
    """``created_at`` keeps milliseconds, so on ``mongo`` many entries share one: the page
    boundary falls among them and still loses or repeats none."""
    with mongo_database("mongomock") as db:
        ensure_indexes(db)
        at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        db.besitos_ledger.insert_many([
            LedgerEntry(key=f"k{n}", user_id=1, amount=1, balance_after=n + 1,
                        created_at=at).model_dump() for n in range(7)])
        ledger = MongoBesitosLedger(db, None)
        pages = [ledger.page(1, 3)]
        while pages[-1].next_cursor is not None:
            pages.append(ledger.page(1, 3, pages[-1].next_cursor))
        keys = [entry.key for page in pages for entry in page.entries]
        assert sorted(keys) == [f"k{n}" for n in range(7)]
        assert keys == [f"k{n}" for n in reversed(range(7))]  # insertion order, newest first


def decode_cursor_json(cursor: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(cursor + "=="))
    return decoded


def encode_json(position: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).rstrip(b"=").decode()


def test_cursor_round_trip_keeps_the_position() -> None:
    class Row(LedgerPosition):
        id: int

    assert decode_cursor(encode_cursor(Row(u=5, id=42)), Row, 5) == Row(u=5, id=42)
