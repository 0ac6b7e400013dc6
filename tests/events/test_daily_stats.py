"""Daily figures: the `stats` consumer group counts what users did, once per event, and
``GET /stats/daily`` serves the counts (embedded default: no Redis, in-process delivery)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from sqlalchemy import Engine

from tests.support.settings import SettingsFactory
from tests.support.users import start_user
from tests.support.waiting import ASK, eventually
from yabot.api.app import create_app
from yabot.api.auth import mint_token
from yabot.api.bridge import ApiBridge
from yabot.domain.subscriptions import Plan
from yabot.events.groups import handle_once
from yabot.events.models import (
    BesitosTransferred,
    FragmentReached,
    SubscriptionChanged,
    UserInteraction,
)
from yabot.events.stats import COUNTS, daily_figures, stats_group
from yabot.runtime import Runtime
from yabot.sessions.messages import (
    BuyItem,
    ChangeSubscription,
    Choose,
    ShowFragment,
    Transact,
)
from yabot.settings import Settings
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata


@pytest.fixture
def live(make_settings: SettingsFactory) -> Iterator[tuple[Runtime, falcon.testing.TestClient]]:
    settings = make_settings(EVENTS_REPLAY_INTERVAL="0.05")
    runtime = Runtime(settings)
    with runtime:
        bridge = ApiBridge(runtime.sessions, settings.actors.ask_timeout)
        app = create_app(settings, bridge, daily_stats=runtime.daily_stats)
        yield runtime, falcon.testing.TestClient(app)


def auth(settings: Settings, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, 'tests', list(scopes))}"}


def totals(days: list[dict[str, Any]]) -> dict[str, int]:
    return {name: sum(day[name] for day in days) for name in COUNTS}


def test_a_scripted_day_of_activity_is_served_with_exactly_its_counts(
    live: tuple[Runtime, falcon.testing.TestClient]
) -> None:
    runtime, client = live
    ask = runtime.sessions.ask
    start_user(runtime, 7)
    start_user(runtime, 8)
    start_user(runtime, 7)  # a second /start is a start too
    view = ask(7, ShowFragment(), timeout=ASK)  # reading is not a choice
    view = ask(7, Choose(fragment_id=view.fragment_id, choice_id="accept"), timeout=ASK)  # +5
    ask(7, Choose(fragment_id=view.fragment_id, choice_id="pay_toll"), timeout=ASK)  # -3
    ask(7, BuyItem(sku="rose", idempotency_key="rose-1"), timeout=ASK)  # -2
    ask(7, BuyItem(sku="rose", idempotency_key="rose-1"), timeout=ASK)  # a replay: nothing
    ask(8, Transact(kind="earn", amount=4, idempotency_key="e-1"), timeout=ASK)  # +4
    ask(7, ChangeSubscription(plan=Plan.VIP, ends_at=datetime.now(UTC) + timedelta(days=30)),
        timeout=ASK)
    expected = {"starts": 3, "choices": 2, "purchases": 1, "besitos_earned": 9,
                "besitos_spent": 5, "vip_starts": 1, "vip_lapses": 0}
    # Yesterday to tomorrow, summed: the script's events may straddle a UTC midnight.
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=1), today + timedelta(days=1)
    query = f"from={first.isoformat()}&to={last.isoformat()}"
    headers = auth(runtime.settings, "stats:read")

    def served() -> dict[str, Any]:
        result = client.simulate_get("/stats/daily", query_string=query, headers=headers)
        assert result.status_code == 200, result.text
        body: dict[str, Any] = result.json
        return body

    eventually(lambda: totals(served()["days"]) == expected,
               "the stats group counted the scripted day")
    body = served()
    assert body["from"] == first.isoformat()
    assert body["to"] == last.isoformat()
    assert [day["day"] for day in body["days"]] == [
        (first + timedelta(days=n)).isoformat() for n in range(3)]
    assert totals(body["days"]) == expected


def test_the_route_needs_stats_read_and_valid_days(
    live: tuple[Runtime, falcon.testing.TestClient]
) -> None:
    runtime, client = live
    settings = runtime.settings
    forbidden = client.simulate_get("/stats/daily", headers=auth(settings, "users:read"))
    assert forbidden.status_code == 403
    assert "stats:read" in forbidden.json["detail"]
    assert client.simulate_get("/stats/daily").status_code == 401
    headers = auth(settings, "stats:read")
    for query in ("from=2026-13-01", "from=yesterday", "to=2026-1-1", "to="):
        result = client.simulate_get("/stats/daily", query_string=query, headers=headers)
        assert result.status_code == 400, query  # not a date: the schema refuses it too
    for query in ("from=2026-12-02&to=2026-12-01", "from=2020-01-01&to=2026-01-01"):
        result = client.simulate_get("/stats/daily", query_string=query, headers=headers)
        assert result.status_code == 422, query  # dates the schema accepts, a range we don't
        assert result.json["type"] == "/problems/unprocessable"
    today = client.simulate_get("/stats/daily", headers=headers)
    assert today.status_code == 200
    assert today.json["from"] == today.json["to"] == datetime.now(UTC).date().isoformat()
    assert len(today.json["days"]) == 1
    document = client.simulate_get("/openapi.json").json
    assert document["paths"]["/stats/daily"]["get"]["security"] == [
        {"bearerAuth": ["stats:read"]}]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'stats.sqlite3'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_each_event_counts_once_on_the_day_it_occurred(engine: Engine) -> None:
    group = stats_group("stats")
    at = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    events = [
        UserInteraction(user_id=1, seq=1, action="start", occurred_at=at),
        UserInteraction(user_id=1, seq=2, action="gift", occurred_at=at),
        FragmentReached(user_id=1, seq=3, fragment_id="start", occurred_at=at),
        FragmentReached(user_id=1, seq=4, fragment_id="gate", choice_id="accept",
                        occurred_at=at),
        BesitosTransferred(user_id=1, seq=5, amount=-7, balance_after=0, ledger_key="k",
                           reason="spend", occurred_at=at),
        SubscriptionChanged(user_id=1, seq=6, plan="vip", status="expired",
                            occurred_at=at + timedelta(seconds=1)),  # the next day
        SubscriptionChanged(user_id=1, seq=7, plan="free", status="active", occurred_at=at),
    ]
    for event in events:
        assert handle_once(engine, group.name, group.handlers, event)
        assert not handle_once(engine, group.name, group.handlers, event)  # redelivered

    first, second = daily_figures(engine, at.date(), at.date() + timedelta(days=1))
    assert (first.starts, first.purchases, first.choices, first.besitos_spent,
            first.vip_starts, first.vip_lapses) == (1, 1, 1, 7, 0, 0)
    assert (second.day, second.vip_lapses, second.starts) == (
        at.date() + timedelta(days=1), 1, 0)
