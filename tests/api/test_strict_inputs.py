"""Strict parsing, bounded metrics, honest Retry-After and the rate budget, on the app built by
`create_app` (falcon's test client; the served app is the same object under gunicorn)."""

from __future__ import annotations

import json
import re
from typing import Any

import falcon.testing
import jsonschema_rs
import pytest

from actors import Ask
from tests.support.api import FailingBridge, make_token
from tests.support.clock import ManualClock
from tests.support.settings import SettingsFactory
from yabot.api.app import create_app
from yabot.api.bridge import ApiBridge
from yabot.api.openapi import openapi_document
from yabot.api.ratelimit import RateLimit, WindowCounts
from yabot.errors import StoreUnavailable, UserNotFound
from yabot.sessions.messages import ChangeSubscription, Transact
from yabot.stores.breaker import CircuitBreaker

USER = 101


class RecordingBridge(ApiBridge):
    """Records each ask and answers `UserNotFound` (so a request that parsed answers 404)."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def ask(self, user_id: int, message: Ask[Any]) -> Any:
        self.asked.append(message)
        raise UserNotFound(user_id)


@pytest.fixture
def bridge() -> RecordingBridge:
    return RecordingBridge()


@pytest.fixture
def client(make_settings: SettingsFactory, bridge: RecordingBridge) -> falcon.testing.TestClient:
    settings = make_settings(JWT_KEY_ID="k2", RATE_LIMIT_PER_SUBJECT="100000/minute")
    return falcon.testing.TestClient(create_app(settings, bridge))


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token()}"}


def send(client: falcon.testing.TestClient, method: str, path: str, body: bytes,
         **headers: str) -> falcon.testing.Result:
    return client.simulate_request(method, path, body=body, headers={
        **auth(), "Content-Type": "application/json", **headers})


def code_of(result: falcon.testing.Result) -> str:
    assert result.headers["content-type"] == "application/problem+json"
    return str(result.json["type"]).rsplit("/", 1)[-1]


def test_a_key_given_twice_in_a_body_is_400(client: falcon.testing.TestClient,
                                            bridge: RecordingBridge) -> None:
    result = send(client, "PUT", f"/user/{USER}/preferences",
                  b'{"language": "en", "notifications": true, "language": "es"}')
    assert (result.status_code, code_of(result)) == (400, "invalid-input")
    assert "language" in result.json["detail"]
    nested = send(client, "POST", f"/user/{USER}/besitos",
                  b'{"kind": "earn", "amount": 1, "amount": 1000}', **{"Idempotency-Key": "k"})
    assert nested.status_code == 400
    assert bridge.asked == []


@pytest.mark.parametrize("raw", ["01001", "0", "+1", "1e3", "\uff11\uff12", "9007199254740992"])
def test_a_user_id_has_one_spelling(client: falcon.testing.TestClient, raw: str) -> None:
    result = client.simulate_get(f"/user/{raw}/state", headers=auth())
    assert (result.status_code, code_of(result)) == (400, "invalid-input")


def test_a_query_parameter_given_twice_is_400(client: falcon.testing.TestClient,
                                              bridge: RecordingBridge) -> None:
    result = client.simulate_get("/narrative/start", query_string="user_id=1&user_id=2",
                                 headers=auth())
    assert (result.status_code, code_of(result)) == (400, "invalid-input")
    assert bridge.asked == []
    once = client.simulate_get("/narrative/start", query_string="user_id=1", headers=auth())
    assert once.status_code == 404  # parsed, asked, no such user


def test_an_integral_float_is_an_integer_as_the_schema_says(
    client: falcon.testing.TestClient, bridge: RecordingBridge,
) -> None:
    body = {"kind": "transfer", "amount": 5.0, "to_user_id": 102.0}
    schema = openapi_document()["components"]["schemas"]
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/TransactionBody", "components": {"schemas": schema}})
    assert validator.is_valid(body)
    result = send(client, "POST", f"/user/{USER}/besitos", json.dumps(body).encode(),
                  **{"Idempotency-Key": "k"})
    assert result.status_code == 404  # parsed and asked
    assert bridge.asked == [Transact(kind="transfer", amount=5, idempotency_key="k",
                                     to_user_id=102)]
    for bad in ({"kind": "earn", "amount": 5.5}, {"kind": "earn", "amount": 1, "to_user_id": 2},
                {"kind": "transfer", "amount": 1}):
        assert not validator.is_valid(bad)
        refused = send(client, "POST", f"/user/{USER}/besitos", json.dumps(bad).encode(),
                       **{"Idempotency-Key": "k2"})
        assert refused.status_code == 400, bad


@pytest.mark.parametrize(("body", "valid"), [
    ({"plan": "vip"}, False),  # an active plan needs its end: the schema says so too
    ({"plan": "vip", "ends_at": "2999-01-01T00:00:00Z"}, True),
    ({"plan": "free"}, True),
    ({"plan": "vip", "status": "cancelled"}, True),
    ({"plan": "free", "status": "cancelled", "ends_at": None}, True),
    ({"plan": "gold"}, False),
])
def test_subscription_bodies_are_valid_by_the_schema_exactly_when_the_code_takes_them(
    client: falcon.testing.TestClient, bridge: RecordingBridge, body: dict[str, Any],
    valid: bool,
) -> None:
    schema = openapi_document()["components"]["schemas"]
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/SubscriptionBody", "components": {"schemas": schema}})
    assert validator.is_valid(body) is valid
    result = send(client, "PUT", f"/user/{USER}/subscription", json.dumps(body).encode())
    assert result.status_code == (404 if valid else 400), result.json
    assert [type(m) for m in bridge.asked] == ([ChangeSubscription] if valid else [])


@pytest.mark.parametrize("body", [
    b'{"kind": "earn", "amount": 1, "reason": "a\\u0000b"}',  # PostgreSQL cannot store NUL
    b'{"kind": "earn", "amount": 1, "reason": "line\\nbreak"}',
    b'{"kind": "earn", "amount": 9007199254740992}',
    b'{"kind": "earn", "amount": 1e400}',
    b'[' * 50_000,  # deeper than any parser's recursion, under the body limit
])
def test_hostile_transaction_bodies_are_400(client: falcon.testing.TestClient,
                                            bridge: RecordingBridge, body: bytes) -> None:
    result = send(client, "POST", f"/user/{USER}/besitos", body, **{"Idempotency-Key": "k"})
    assert (result.status_code, code_of(result)) == (400, "invalid-input")
    assert bridge.asked == []


@pytest.mark.parametrize("ends_at", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:45:01+11:33"])
def test_an_end_that_leaves_the_calendar_once_in_utc_is_422(
    client: falcon.testing.TestClient, ends_at: str,
) -> None:
    """Valid by the schema (found by `make fuzz`), so not 400; never a 500."""
    body = json.dumps({"plan": "vip", "ends_at": ends_at}).encode()
    result = send(client, "PUT", f"/user/{USER}/subscription", body)
    assert (result.status_code, code_of(result)) == (422, "unprocessable")


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")  # wsgiref's validator objects
def test_made_up_methods_and_unmatched_paths_fold_into_one_label_each(
    client: falcon.testing.TestClient,
) -> None:
    for n in range(20):
        client.simulate_request(f"BREW{n}", f"/nowhere/{n}")
        client.simulate_request(f"BREW{n}", f"/user/{USER}/state", headers=auth())
    text = client.simulate_get("/metrics").text
    assert "BREW" not in text
    assert "/nowhere" not in text
    assert 'method="OTHER",route="<unmatched>"' in text
    assert 'method="OTHER",route="/user/{user_id}/state"' in text


def test_a_request_refused_by_one_limit_spends_nothing_of_the_others(
    make_settings: SettingsFactory,
) -> None:
    clock = ManualClock(1_000.0)
    settings = make_settings(JWT_KEY_ID="k2", RATE_LIMIT_PER_SUBJECT="3/hour;2/minute")
    limit = RateLimit(settings, WindowCounts(clock))
    client = falcon.testing.TestClient(
        create_app(settings, FailingBridge(UserNotFound(USER)), rate_limit=limit))

    def status() -> falcon.testing.Result:
        return client.simulate_get(f"/user/{USER}/state", headers=auth())

    assert [status().status_code for _ in range(2)] == [404, 404]
    refused = status()
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"  # the minute window's reset
    clock.now += 30
    assert status().headers["retry-after"] == "30"
    clock.now += 30
    assert status().status_code == 404  # the hour still had room: refusals spent none
    final = status()
    assert final.status_code == 429
    assert final.headers["retry-after"] == "3540"  # now the hour is what holds


def test_retry_after_is_the_breakers_remaining_cool_down(
    make_settings: SettingsFactory,
) -> None:
    clock = ManualClock(0.0)
    breaker = CircuitBreaker("sql", failure_threshold=1, cool_down=30.0, clock=clock)
    breaker.record_failure()
    clock.now = 12.5
    with pytest.raises(StoreUnavailable) as refused:
        breaker.before_call()
    client = falcon.testing.TestClient(create_app(
        make_settings(JWT_KEY_ID="k2"), FailingBridge(refused.value)))
    result = client.simulate_get(f"/user/{USER}/state", headers=auth())
    assert (result.status_code, code_of(result)) == (503, "store-unavailable")
    assert result.headers["retry-after"] == "18"


@pytest.mark.parametrize(("sent", "echoed"), [
    ("trace-me-42", True),
    ("x" * 64, True),
    ("x" * 65, False),  # too long for a log field: replaced
    ("bad\x7fid", False),  # not printable: replaced
])
def test_a_callers_request_id_is_echoed_only_if_it_is_short_and_printable(
    client: falcon.testing.TestClient, sent: str, echoed: bool,
) -> None:
    answer = client.simulate_get("/healthz", headers={"X-Request-Id": sent})
    got = answer.headers["x-request-id"]
    if echoed:
        assert got == sent
    else:
        assert got != sent
        assert re.fullmatch(r"[0-9a-f]{32}", got), got
