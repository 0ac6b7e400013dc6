"""Property-based testing of the served API against its own `/openapi.json` (schemathesis).

Bounded: ``MAX_EXAMPLES`` per operation and generation mode; no per-example deadline
(speed is for `make bench`: a deadline fails on a busy machine, not on a slow API).
Valid requests (positive mode) and invalid ones (negative mode) must never get a 5xx, and
every response must match the document (status, content type, headers, body).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.api import USERS, ServedApi, make_token
from tests.support.waiting import ASK

MAX_EXAMPLES = 25
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_headers_conformance, response_schema_conformance]


def _operations(api: ServedApi) -> list[Any]:
    schema = schemathesis.openapi.from_url(api.base_url + "/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation the document failed to describe
        operations.append(result.ok())
    assert len(operations) == 9
    return operations


@pytest.mark.parametrize(
    ("mode", "checks", "existing_user"),
    [
        (schemathesis.GenerationMode.POSITIVE, CONFORMANCE, False),
        # Random ids rarely name a user: this run fixes an existing one (and the story's start
        # fragment), so success responses are checked against their schemas too.
        (schemathesis.GenerationMode.POSITIVE, CONFORMANCE, True),
        (schemathesis.GenerationMode.NEGATIVE, [*CONFORMANCE, negative_data_rejection], False),
    ],
    ids=["positive", "positive-existing-user", "negative"],
)
def test_every_operation_conforms_and_never_fails(
    api: ServedApi, mode: schemathesis.GenerationMode, checks: list[Any], existing_user: bool
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

        @settings(max_examples=MAX_EXAMPLES, deadline=None,
                  database=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        def run(case: schemathesis.Case[Any]) -> None:
            response = case.call_and_validate(base_url=api.base_url, headers=headers,
                                              checks=checks, timeout=ASK)
            statuses[case.operation.label].add(response.status_code)

        run()
        tested.append(operation.label)
    assert tested  # the loop ran against real operations
    if existing_user:  # success responses were produced, so their schemas were checked
        for label in ("GET /user/{user_id}/state", "GET /narrative/{fragment_id}",
                      "GET /user/{user_id}/subscription"):
            assert 200 in statuses[label], dict(statuses)


def _has_inputs(operation: Any) -> bool:
    return bool(operation.path_parameters or operation.query or operation.headers
                or operation.body)
