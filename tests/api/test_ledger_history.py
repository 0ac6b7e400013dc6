"""``GET /user/{id}/besitos``: the ledger history in pages, through the app and the users'
sessions, with documents on the `sql` backend (SQLite) and on mongomock."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from actors import Ask
from tests.sessions.support import Sessions, start
from tests.support.actors import actor_kit
from tests.support.stores import stores_on
from yabot.api.app import create_app
from yabot.api.auth import mint_token
from yabot.api.bridge import ApiBridge
from yabot.domain.besitos import user_key
from yabot.domain.ledger_pages import DEFAULT_LEDGER_PAGE, MAX_LEDGER_PAGE
from yabot.sessions.messages import Transact
from yabot.settings import Settings

ANA, BEA, NOBODY = 11, 12, 99


class SessionsBridge(ApiBridge):
    """The app's bridge onto sessions spawned without the tree (`Sessions`)."""

    def __init__(self, sessions: Sessions) -> None:
        self._test_sessions = sessions

    def ask(self, user_id: int, message: Ask[Any]) -> Any:
        return self._test_sessions.ask(user_id, message)


@pytest.fixture(params=["sqlite", "mongomock"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sessions]:
    with stores_on(request.param, request, tmp_path) as stores, actor_kit() as kit:
        sessions = Sessions(kit, stores)
        start(sessions, ANA)
        start(sessions, BEA)
        yield sessions


@pytest.fixture
def client(settings: Settings, sessions: Sessions) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(settings, SessionsBridge(sessions)))


def headers(settings: Settings, *scopes: str) -> dict[str, str]:
    token = mint_token(settings, "tests", list(scopes or ["users:read"]))
    return {"Authorization": f"Bearer {token}"}


def history(sessions: Sessions, user_id: int, changes: int) -> list[str]:
    """``changes`` applied earns and spends of ``user_id``; their keys, newest first."""
    keys = []
    for n in range(changes):
        key = f"{user_id}-{n}"
        kind = "spend" if n % 4 == 3 else "earn"
        assert sessions.ask(user_id, Transact(kind=kind, amount=2, idempotency_key=key)).applied
        keys.append(user_key(user_id, key))  # the ledger's key for the caller's
    return keys[::-1]


def get(client: falcon.testing.TestClient, settings: Settings, query: str,
        user_id: int = ANA) -> falcon.testing.Result:
    return client.simulate_get(f"/user/{user_id}/besitos", query_string=query,
                               headers=headers(settings))


def test_pages_return_every_entry_exactly_once_newest_first(
    client: falcon.testing.TestClient, settings: Settings, sessions: Sessions
) -> None:
    newest_first = history(sessions, ANA, 13)
    history(sessions, BEA, 3)
    pages = [get(client, settings, "limit=4")]
    while (cursor := pages[-1].json["next_cursor"]) is not None:
        pages.append(get(client, settings, f"limit=4&cursor={cursor}"))
        assert len(pages) <= 10, "the cursors do not end"
    assert [page.status_code for page in pages] == [200] * 4
    entries = [entry for page in pages for entry in page.json["entries"]]
    assert [entry["key"] for entry in entries] == newest_first
    assert [len(page.json["entries"]) for page in pages] == [4, 4, 4, 1]
    # Each entry's balance follows from the one before it (oldest first).
    oldest_first = entries[::-1]
    for before, after in itertools.pairwise(oldest_first):
        assert after["balance_after"] == before["balance_after"] + after["amount"]
    assert set(entries[0]) == {"key", "amount", "balance_after", "reason", "compensated",
                               "created_at"}


def test_the_default_page_and_the_largest(
    client: falcon.testing.TestClient, settings: Settings, sessions: Sessions
) -> None:
    history(sessions, ANA, DEFAULT_LEDGER_PAGE + 1)
    first = get(client, settings, "")
    assert len(first.json["entries"]) == DEFAULT_LEDGER_PAGE
    assert first.json["next_cursor"] is not None
    whole = get(client, settings, f"limit={MAX_LEDGER_PAGE}")
    assert len(whole.json["entries"]) == DEFAULT_LEDGER_PAGE + 1
    assert whole.json["next_cursor"] is None


def test_a_transfer_is_in_both_histories(
    client: falcon.testing.TestClient, settings: Settings, sessions: Sessions
) -> None:
    sessions.ask(ANA, Transact(kind="earn", amount=10, idempotency_key="pay"))
    sessions.ask(ANA, Transact(kind="transfer", amount=3, idempotency_key="gift-bea",
                               to_user_id=BEA, reason="thanks"))
    ana = get(client, settings, "").json["entries"]
    bea = get(client, settings, "", BEA).json["entries"]
    assert [(e["amount"], e["balance_after"]) for e in ana] == [(-3, 7), (10, 10)]
    assert [(e["amount"], e["balance_after"]) for e in bea] == [(3, 3)]
    assert ana[0]["key"] == user_key(ANA, "gift-bea")


def test_no_history_is_one_empty_page(client: falcon.testing.TestClient,
                                      settings: Settings) -> None:
    result = get(client, settings, "")
    assert (result.status_code, result.json) == (200, {"entries": [], "next_cursor": None})


@pytest.mark.parametrize("query", [
    "limit=0", f"limit={MAX_LEDGER_PAGE + 1}", "limit=-1", "limit=abc", "limit=1.5",
    "limit=01", "limit=", "limit=1&limit=2", "cursor=", "cursor=not!base64",
    "cursor=" + "A" * 300, "cursor=a&cursor=b",
])
def test_a_malformed_limit_or_cursor_is_400(
    client: falcon.testing.TestClient, settings: Settings, sessions: Sessions, query: str
) -> None:
    history(sessions, ANA, 3)
    result = get(client, settings, query)
    assert result.status_code == 400, (query, result.json)
    assert result.headers["content-type"] == "application/problem+json"


def test_a_well_formed_cursor_the_api_did_not_give_is_422(
    client: falcon.testing.TestClient, settings: Settings, sessions: Sessions
) -> None:
    """Valid by the documented schema (so not 400), but no place in this history: forged,
    edited, or another user's."""
    history(sessions, ANA, 3)
    history(sessions, BEA, 3)
    beas = get(client, settings, "limit=1", BEA).json["next_cursor"]
    ours = get(client, settings, "limit=1").json["next_cursor"]
    position = json.loads(base64.urlsafe_b64decode(ours + "=" * (-len(ours) % 4)))
    edited = base64.urlsafe_b64encode(
        json.dumps({**position, "u": str(ANA)}).encode()).rstrip(b"=").decode()
    for cursor in (beas, "AAAA", "e30", edited):
        result = get(client, settings, f"cursor={cursor}")
        assert result.status_code == 422, (cursor, result.json)
        assert result.json["type"] == "/problems/unprocessable"


def test_an_unknown_user_is_404(client: falcon.testing.TestClient, settings: Settings) -> None:
    result = get(client, settings, "", NOBODY)
    assert result.status_code == 404
    assert result.json["type"] == "/problems/user-not-found"
    assert get(client, settings, "", 0).status_code == 400


def test_reading_the_history_needs_users_read(
    client: falcon.testing.TestClient, settings: Settings
) -> None:
    assert client.simulate_get(f"/user/{ANA}/besitos").status_code == 401
    writer = client.simulate_get(f"/user/{ANA}/besitos",
                                 headers=headers(settings, "besitos:write"))
    assert writer.status_code == 403
    reader = client.simulate_post(f"/user/{ANA}/besitos", json={"kind": "earn", "amount": 1},
                                  headers={**headers(settings, "users:read"),
                                           "Idempotency-Key": "k"})
    assert reader.status_code == 403
    assert get(client, settings, "").status_code == 200
