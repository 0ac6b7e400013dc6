"""Every domain route through real gunicorn and the real session actors: success and error
cases, each answered as JSON or RFC 9457 problem details."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.api import ServedApi, make_token, problem
from tests.support.http import Response

ANA, BEA, CAROL = 101, 102, 103  # created by conftest.served_api through Start
UNKNOWN = 4242


def _json(data: object) -> bytes:
    return json.dumps(data).encode()


# ---- GET /user/{id}/state ------------------------------------------------------------------


def test_state_of_a_user(api: ServedApi) -> None:
    response = api.call("GET", f"/user/{ANA}/state", token=make_token(["users:read"]))
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    # One field, one place: the API's own shape, not the stored document and profile.
    assert set(body) == {"user_id", "created_at", "telegram", "preferences", "besitos",
                         "current_fragment", "inventory", "subscription"}
    assert body["user_id"] == ANA
    assert body["telegram"]["first_name"] == f"User {ANA}"
    assert body["subscription"]["plan"] == "free"
    assert set(body["preferences"]) == {"language", "notifications"}


@pytest.mark.parametrize(("user", "status", "code"), [
    (str(UNKNOWN), 404, "user-not-found"), ("abc", 400, "invalid-input"),
    ("0", 400, "invalid-input"), ("9" * 20, 400, "invalid-input"),
])
def test_state_errors(api: ServedApi, user: str, status: int, code: str) -> None:
    problem(api.call("GET", f"/user/{user}/state", token=make_token()), status, code)


# ---- PUT /user/{id}/preferences ------------------------------------------------------------


def test_put_preferences_replaces_them_all(api: ServedApi) -> None:
    token = make_token(["users:write", "users:read"])
    for preferences in ({"language": "en", "notifications": False},
                        {"language": "es", "notifications": True}):
        response = api.call("PUT", f"/user/{BEA}/preferences", token=token,
                            json_body=_json(preferences))
        assert response.status == 200, response.body
        assert response.json() == preferences
        state = api.call("GET", f"/user/{BEA}/state", token=token).json()
        assert state["preferences"] == preferences


@pytest.mark.parametrize(("body", "field"), [
    ({"language": "en"}, "notifications"),  # PUT replaces: every field is required
    ({"language": "en", "notifications": True, "theme": "dark"}, "theme"),  # unknown field
    ({"language": "fr", "notifications": True}, "language"),
    ({"language": "en", "notifications": "yes"}, "notifications"),  # strict: no coercion
])
def test_put_preferences_rejects_invalid_bodies(api: ServedApi, body: object, field: str
                                                ) -> None:
    response = api.call("PUT", f"/user/{BEA}/preferences", token=make_token(),
                        json_body=_json(body))
    details = problem(response, 400, "invalid-input")
    assert field in str(details["detail"])


def test_put_preferences_errors(api: ServedApi) -> None:
    token = make_token()
    good = _json({"language": "en", "notifications": True})
    problem(api.call("PUT", f"/user/{UNKNOWN}/preferences", token=token, json_body=good),
            404, "user-not-found")
    problem(api.call("PUT", f"/user/{BEA}/preferences", token=token, json_body=b"{not json"),
            400, "invalid-input")
    problem(api.call("PUT", f"/user/{BEA}/preferences", token=token, json_body=b""),
            400, "invalid-input")


# ---- GET /narrative/{fragment_id}?user_id= -------------------------------------------------


def test_fragment_for_a_user(api: ServedApi) -> None:
    response = api.call("GET", f"/narrative/start?user_id={ANA}",
                        token=make_token(["narrative:read"]))
    assert response.status == 200, response.body
    body = response.json()
    assert body["fragment_id"] == "start"
    assert body["vip_only"] is False
    assert body["choices"]
    assert {"choice_id", "label", "next_fragment", "available"} <= set(body["choices"][0])


def test_vip_fragment_for_a_free_user_is_403_with_the_reason(api: ServedApi) -> None:
    response = api.call("GET", f"/narrative/vip_salon?user_id={ANA}", token=make_token())
    details = problem(response, 403, "vip-required")
    assert details["detail"]


@pytest.mark.parametrize(("path", "status", "code"), [
    (f"/narrative/no_such_fragment?user_id={ANA}", 404, "fragment-not-found"),
    (f"/narrative/Bad!Id?user_id={ANA}", 400, "invalid-input"),
    ("/narrative/start", 400, "invalid-input"),
    ("/narrative/start?user_id=x", 400, "invalid-input"),
    (f"/narrative/start?user_id={UNKNOWN}", 404, "user-not-found"),
])
def test_fragment_errors(api: ServedApi, path: str, status: int, code: str) -> None:
    problem(api.call("GET", path, token=make_token()), status, code)


# ---- POST /user/{id}/besitos ---------------------------------------------------------------


def _transact(api: ServedApi, user: int, key: str | None, body: object) -> Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.call("POST", f"/user/{user}/besitos", token=make_token(["besitos:write"]),
                    json_body=_json(body), headers=headers)


def test_earn_spend_and_replay_with_the_same_key(api: ServedApi) -> None:
    earned = _transact(api, CAROL, "earn-1", {"kind": "earn", "amount": 30, "reason": "gift"})
    assert earned.status == 200, earned.body
    assert earned.json() == {"key": "earn-1", "kind": "earn", "amount": 30, "applied": True,
                             "balance": earned.json()["balance"]}
    balance = earned.json()["balance"]
    assert balance >= 30

    replay = _transact(api, CAROL, "earn-1", {"kind": "earn", "amount": 30, "reason": "gift"})
    assert replay.status == 200
    assert replay.json()["applied"] is False
    assert replay.json()["balance"] == balance

    spent = _transact(api, CAROL, "spend-1", {"kind": "spend", "amount": 10})
    assert spent.status == 200
    assert spent.json()["balance"] == balance - 10


def test_same_key_with_a_different_body_is_409(api: ServedApi) -> None:
    assert _transact(api, CAROL, "k-conflict", {"kind": "earn", "amount": 5}).status == 200
    problem(_transact(api, CAROL, "k-conflict", {"kind": "earn", "amount": 6}),
            409, "idempotency-conflict")


def test_same_key_with_a_body_that_differs_only_in_reason_is_409(api: ServedApi) -> None:
    body = {"kind": "earn", "amount": 5, "reason": "quest reward"}
    assert _transact(api, CAROL, "k-reason", body).status == 200
    before = api.call("GET", f"/user/{CAROL}/state", token=make_token()).json()
    problem(_transact(api, CAROL, "k-reason", {**body, "reason": "another reason"}),
            409, "idempotency-conflict")
    problem(_transact(api, CAROL, "k-reason", {"kind": "earn", "amount": 5}),
            409, "idempotency-conflict")  # a reason left out is a different reason too
    replay = _transact(api, CAROL, "k-reason", body)
    assert (replay.status, replay.json()["applied"]) == (200, False)
    after = api.call("GET", f"/user/{CAROL}/state", token=make_token()).json()
    assert after["besitos"] == before["besitos"]


def test_transfer_moves_besitos_between_users(api: ServedApi) -> None:
    assert _transact(api, ANA, "fund-ana", {"kind": "earn", "amount": 20}).status == 200
    before = api.call("GET", f"/user/{BEA}/state", token=make_token()).json()
    moved = _transact(api, ANA, "to-bea", {"kind": "transfer", "amount": 7, "to_user_id": BEA})
    assert moved.status == 200, moved.body
    assert moved.json()["kind"] == "transfer"
    after = api.call("GET", f"/user/{BEA}/state", token=make_token()).json()
    assert after["besitos"] == before["besitos"] + 7


def test_earning_past_the_balance_limit_is_409_and_changes_nothing(api: ServedApi) -> None:
    limit = 2**53 - 1
    balance = api.call("GET", f"/user/{BEA}/state", token=make_token()).json()
    room = limit - balance["besitos"]
    filled = _transact(api, BEA, "fill-bea", {"kind": "earn", "amount": room})
    assert (filled.status, filled.json()["balance"]) == (200, limit)
    problem(_transact(api, BEA, "past-limit", {"kind": "earn", "amount": 1}),
            409, "balance-limit")
    problem(_transact(api, ANA, "to-full-bea",
                      {"kind": "transfer", "amount": 1, "to_user_id": BEA}),
            409, "balance-limit")
    after = api.call("GET", f"/user/{BEA}/state", token=make_token()).json()
    assert after["besitos"] == limit
    spent = _transact(api, BEA, "drain-bea", {"kind": "spend", "amount": limit})
    assert (spent.status, spent.json()["balance"]) == (200, 0)


@pytest.mark.parametrize(("user", "key", "body", "status", "code"), [
    (CAROL, None, {"kind": "earn", "amount": 1}, 400, "invalid-input"),  # no Idempotency-Key
    (CAROL, "x" * 129, {"kind": "earn", "amount": 1}, 400, "invalid-input"),
    (CAROL, "k-bad-1", {"kind": "steal", "amount": 1}, 400, "invalid-input"),
    (CAROL, "k-bad-2", {"kind": "earn", "amount": 0}, 400, "invalid-input"),
    (CAROL, "k-bad-3", {"kind": "earn", "amount": "5"}, 400, "invalid-input"),
    (CAROL, "k-bad-4", {"kind": "earn", "amount": 1, "extra": 1}, 400, "invalid-input"),
    (CAROL, "k-poor", {"kind": "spend", "amount": 10**9}, 409, "insufficient-besitos"),
    (CAROL, "k-self", {"kind": "transfer", "amount": 1, "to_user_id": CAROL}, 422,
     "unprocessable"),
    (CAROL, "k-nobody", {"kind": "transfer", "amount": 1, "to_user_id": UNKNOWN}, 404,
     "user-not-found"),
    (UNKNOWN, "k-ghost", {"kind": "earn", "amount": 1}, 404, "user-not-found"),
])
def test_transaction_errors(api: ServedApi, user: int, key: str | None, body: object,
                            status: int, code: str) -> None:
    problem(_transact(api, user, key, body), status, code)


# ---- GET / PUT /user/{id}/subscription -----------------------------------------------------


def test_subscription_lifecycle_unlocks_vip_fragments(api: ServedApi) -> None:
    read = make_token(["users:read", "narrative:read"])
    write = make_token(["subscriptions:write"])
    assert api.call("GET", f"/user/{ANA}/subscription", token=read).json()["plan"] == "free"

    ends_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    started = api.call("PUT", f"/user/{ANA}/subscription", token=write,
                       json_body=_json({"plan": "vip", "ends_at": ends_at}))
    assert started.status == 200, started.body
    assert started.json()["vip"] is True
    assert started.json()["status"] == "active"
    assert api.call("GET", f"/user/{ANA}/subscription", token=read).json()["vip"] is True
    assert api.call("GET", f"/narrative/vip_salon?user_id={ANA}", token=read).status == 200

    cancelled = api.call("PUT", f"/user/{ANA}/subscription", token=write,
                         json_body=_json({"plan": "vip", "status": "cancelled"}))
    assert cancelled.status == 200, cancelled.body
    assert cancelled.json()["vip"] is False
    problem(api.call("GET", f"/narrative/vip_salon?user_id={ANA}", token=read),
            403, "vip-required")


@pytest.mark.parametrize(("user", "body", "status", "code"), [
    (BEA, {"plan": "vip", "ends_at": "2001-01-01T00:00:00Z"}, 422, "unprocessable"),  # past
    (BEA, {"plan": "vip", "ends_at": "2099-01-01T00:00:00"}, 400, "invalid-input"),  # naive
    (BEA, {"plan": "gold"}, 400, "invalid-input"),
    (BEA, {"plan": "vip", "status": "paused"}, 400, "invalid-input"),
    (UNKNOWN, {"plan": "vip", "ends_at": "2099-01-01T00:00:00Z"}, 404, "user-not-found"),
])
def test_subscription_errors(api: ServedApi, user: int, body: object, status: int, code: str
                             ) -> None:
    response = api.call("PUT", f"/user/{user}/subscription",
                        token=make_token(["subscriptions:write"]), json_body=_json(body))
    problem(response, status, code)
    if user != UNKNOWN:
        current = api.call("GET", f"/user/{user}/subscription", token=make_token())
        assert current.json()["plan"] == "free"  # nothing changed


# ---- PUT /user/{id}, POST /user/{id}/purchases, POST /user/{id}/gifts ----------------------


def test_provisioning_a_user_is_idempotent(api: ServedApi) -> None:
    token = make_token(["users:write", "users:read"])
    body = _json({"first_name": "Dora", "username": "dora_x", "language_code": "es-ES"})
    created = api.call("PUT", "/user/555001", token=token, json_body=body)
    assert created.status == 201, created.body
    state = created.json()
    assert (state["user_id"], state["telegram"]["first_name"]) == (555001, "Dora")
    assert state["preferences"]["language"] == "es"
    again = api.call("PUT", "/user/555001", token=token, json_body=body)
    assert (again.status, again.json()) == (200, state)
    read = api.call("GET", "/user/555001/state", token=token)
    assert (read.status, read.json()) == (200, state)
    # What the bot cleans from a Telegram profile (tests/bot/test_profile_names.py), the API
    # refuses: the caller can send it right.
    for refused in ({"first_name": "nul\u0000"}, {"first_name": "Z" * 10_000},
                    {"username": "a b"}, {"language_code": "es\u0000"}):
        problem(api.call("PUT", "/user/555002", token=token, json_body=_json(refused)),
                400, "invalid-input")
    problem(api.call("PUT", "/user/555002", token=token,
                     json_body=b'{"first_name": "lone \\ud800"}'), 400, "invalid-input")
    problem(api.call("PUT", "/user/555003", token=make_token(["users:read"]), json_body=body),
            403, "forbidden")


def test_buying_and_gifting_items(api: ServedApi) -> None:
    assert _transact(api, ANA, "fund-shop", {"kind": "earn", "amount": 10}).status == 200
    token = make_token(["besitos:write"])

    def post(path: str, key: str, body: object) -> Response:
        return api.call("POST", path, token=token, json_body=_json(body),
                        headers={"Idempotency-Key": key})

    bought = post(f"/user/{ANA}/purchases", "buy-lantern", {"sku": "lantern"})
    assert bought.status == 200, bought.body
    assert bought.json()["applied"] is True
    assert "lantern" in bought.json()["inventory"]
    replay = post(f"/user/{ANA}/purchases", "buy-lantern", {"sku": "lantern"})
    assert (replay.json()["applied"], replay.json()["balance"]) == (False,
                                                                   bought.json()["balance"])
    problem(post(f"/user/{ANA}/purchases", "buy-ghost", {"sku": "ghost"}), 404,
            "item-not-found")

    gift = post(f"/user/{ANA}/gifts", "rose-for-bea", {"sku": "rose", "to_user_id": BEA})
    assert gift.status == 200, gift.body
    assert (gift.json()["applied"], gift.json()["to_user_id"]) == (True, BEA)
    assert gift.json()["balance"] == bought.json()["balance"] - 2
    bea = api.call("GET", f"/user/{BEA}/state", token=make_token()).json()
    assert "rose" in bea["inventory"]
    problem(post(f"/user/{ANA}/gifts", "self", {"sku": "rose", "to_user_id": ANA}), 422,
            "unprocessable")
