"""Property-based testing of the served API against its own `/openapi.json` (schemathesis).

Every check schemathesis has (its default set: no 5xx, status codes, content types, headers
and bodies as documented, valid data accepted, invalid data refused, auth not ignored,
unsupported methods 405, …), for each operation alone and as stateful sequences that follow
the document's links (a transaction, then its user and its recipient read back).

Bounded: ``YABOT_FUZZ_EXAMPLES`` examples per operation and generation mode (25 in
``make test``; ``make fuzz`` runs 300).
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import TypeAdapter, ValidationError
from schemathesis.config import SchemathesisConfig

from tests.support.api import USERS, ServedApi, make_token
from tests.support.balances import Balances
from tests.support.waiting import ASK
from yabot.api.resources import MAX_USER_ID
from yabot.domain.items import Sku

#: Items of the seed catalogue anyone may buy (`yabot/narrative/items.toml`).
SKUS = ("lantern", "rose")
SKU: TypeAdapter[str] = TypeAdapter(Sku)
EXAMPLES = int(os.environ.get("YABOT_FUZZ_EXAMPLES", "25"))
#: Valid by the schema may still be refused by the domain: 404 (no such user), 409 (too few
#: besitos, a key reused), 422 (a transfer to oneself, a plan ending in the past). 400 is not
#: here: a body the schema accepts must parse.
ACCEPTED = ["2xx", "401", "403", "404", "409", "422", "429"]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}}}
)
# No per-example deadline: speed is for `make bench` (a deadline fails on a busy machine).
HYPOTHESIS: dict[str, Any] = {"deadline": None, "database": None,
              "suppress_health_check": list(HealthCheck), "derandomize": True}


def _schema(api: ServedApi) -> Any:
    return schemathesis.openapi.from_url(api.base_url + "/openapi.json", config=CONFIG)


def _operations(api: ServedApi) -> list[Any]:
    operations = [result.ok() for result in _schema(api).get_all_operations()]
    assert len(operations) == 14  # the API routes (OpenAPI snapshot) plus /stats/daily
    return operations


@pytest.mark.parametrize(
    ("mode", "existing_user"),
    [
        (schemathesis.GenerationMode.POSITIVE, False),
        # Random ids rarely name a user: this run fixes an existing one (and the story's start
        # fragment), so success responses are checked against their schemas too.
        (schemathesis.GenerationMode.POSITIVE, True),
        (schemathesis.GenerationMode.NEGATIVE, False),
    ],
    ids=["positive", "positive-existing-user", "negative"],
)
def test_every_operation_conforms_and_never_fails(
    api: ServedApi, mode: schemathesis.GenerationMode, existing_user: bool
) -> None:
    headers = {"Authorization": f"Bearer {make_token()}"}
    tested = []
    statuses: dict[str, set[int]] = defaultdict(set)
    for operation in _operations(api):
        if mode is schemathesis.GenerationMode.NEGATIVE and not _has_inputs(operation):
            continue  # nothing to make invalid (health, metrics, the document)
        fixed: dict[str, Any] = {}
        if existing_user:
            names = {p.name for p in operation.path_parameters}
            if not names and not operation.query:
                continue
            path: dict[str, Any] = {"user_id": USERS[0]} if "user_id" in names else {}
            if "fragment_id" in names:
                path["fragment_id"] = "start"
            fixed = {"path_parameters": path,
                     "query": {"user_id": USERS[0]} if operation.query else None}

        @settings(max_examples=EXAMPLES, **HYPOTHESIS)
        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        def run(case: schemathesis.Case[Any]) -> None:
            response = case.call_and_validate(base_url=api.base_url, headers=headers,
                                              timeout=ASK)
            statuses[case.operation.label].add(response.status_code)

        run()
        tested.append(operation.label)
    assert tested  # the loop ran against real operations
    if existing_user:  # success responses were produced, so their schemas were checked
        for label in ("GET /user/{user_id}/state", "GET /narrative/{fragment_id}",
                      "GET /user/{user_id}/subscription"):
            assert 200 in statuses[label], dict(statuses)


def test_linked_sequences_conform_and_never_fail(api: ServedApi) -> None:
    """Stateful: schemathesis follows the document's links from each answer (state → its
    besitos and subscription; a transaction → its user and recipient read back; a ledger
    page → the next). Every step's answer passes every check and is never a 5xx, and every
    balance an answer shows agrees with what the steps before it did (`Balances`)."""
    schema = _schema(api)
    answered: dict[str, int] = defaultdict(int)
    linked: dict[str, int] = defaultdict(int)
    compared: dict[str, int] = defaultdict(int)
    token = make_token()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every user starts the scenario with besitos, so purchases, gifts and spends
            # can succeed and their links (read the user back) are followed.
            self.balances = Balances()
            for user in USERS:
                earned = api.call("POST", f"/user/{user}/besitos", token=token,
                                  json_body=b'{"kind": "earn", "amount": 50}',
                                  headers={"Idempotency-Key": uuid.uuid4().hex})
                assert earned.status == 200, earned.body
                self.balances.changed(user, earned.json()["balance"])

        def teardown(self) -> None:
            for operation, count in self.balances.compared.items():
                compared[operation] += count

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                linked[input.transition.id] += 1
            return super().step(input)

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"base_url": api.base_url, "headers": {"Authorization": f"Bearer {token}"},
                    "timeout": ASK}

        def before_call(self, case: schemathesis.Case[Any]) -> None:
            # A generated id rarely names a user; a linked one always does. Steer generated
            # ids onto the users that exist, so sequences go past the first 404. Only valid
            # ids: an invalid one is what a negative case is about.
            user = (case.path_parameters or {}).get("user_id")
            if isinstance(user, int) and 0 < user <= MAX_USER_ID and user not in USERS:
                case.path_parameters["user_id"] = USERS[user % len(USERS)]
            # Likewise a generated recipient or item rarely exists: steer them onto ones that
            # do (a recipient equal to the user stays: that is a 422 worth asking for).
            body: dict[str, Any] = case.body if isinstance(case.body, dict) else {}
            recipient = body.get("to_user_id")
            if isinstance(recipient, int) and 0 < recipient <= MAX_USER_ID \
                    and recipient not in USERS:
                body["to_user_id"] = USERS[recipient % len(USERS)]
            sku = body.get("sku")
            if isinstance(sku, str) and _valid_sku(sku):
                body["sku"] = SKUS[len(sku) % len(SKUS)]

        def after_call(self, response: Any, case: schemathesis.Case[Any]) -> None:
            super().after_call(response, case)
            answered[f"{case.operation.label} {response.status_code}"] += 1
            assert response.status_code < 500, (case.operation.label, response.text)
            is_json = response.headers.get("content-type", [""])[0] == "application/json"
            self.balances.observe(case, response.status_code,
                                  response.json() if is_json else None)

    Workflow.run(settings=settings(max_examples=max(5, EXAMPLES // 3),
                                   stateful_step_count=6, **HYPOTHESIS))
    # Every step's response was validated by every check (a failure raises above). The
    # machine followed links, and answers were compared with balances learnt before them.
    assert sum(answered.values()) > 0, dict(answered)
    assert sum(linked.values()) > 0, (dict(linked), dict(answered))
    assert sum(compared.values()) > 0, (dict(compared), dict(linked), dict(answered))


def _valid_sku(value: str) -> bool:
    try:
        SKU.validate_python(value)
    except ValidationError:
        return False
    return True


def _has_inputs(operation: Any) -> bool:
    return bool(operation.path_parameters or operation.query or operation.headers
                or operation.body)
