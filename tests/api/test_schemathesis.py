"""Property-based testing of the served API against its own `/openapi.json` (schemathesis).

Bounded: ``MAX_EXAMPLES`` per operation and generation mode, each example within
``DEADLINE_MS``. Valid requests (positive mode) and invalid ones (negative mode) must never
get a 5xx, and every response must match the document (status, content type, headers, body).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ServedApi, make_token

MAX_EXAMPLES = 25
DEADLINE_MS = 5000  # per example; generous for a 2-core machine running the suite
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_headers_conformance, response_schema_conformance]


def _operations(api: ServedApi) -> list[Any]:
    schema = schemathesis.openapi.from_url(api.base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9
    return operations


@pytest.mark.parametrize(
    ("mode", "checks"),
    [
        (schemathesis.GenerationMode.POSITIVE, CONFORMANCE),
        (schemathesis.GenerationMode.NEGATIVE, [*CONFORMANCE, negative_data_rejection]),
    ],
    ids=["positive", "negative"],
)
def test_every_operation_conforms_and_never_fails(
    api: ServedApi, mode: schemathesis.GenerationMode, checks: list[Any]
) -> None:
    headers = {"Authorization": f"Bearer {make_token()}"}
    tested = []
    for operation in _operations(api):
        if mode is schemathesis.GenerationMode.NEGATIVE and not _has_inputs(operation):
            continue  # nothing to make invalid (health, metrics, the document)

        @settings(max_examples=MAX_EXAMPLES, deadline=timedelta(milliseconds=DEADLINE_MS),
                  database=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=api.base_url, headers=headers, checks=checks,
                                   timeout=10)

        run()
        tested.append(operation.label)
    assert tested  # the loop ran against real operations


def _has_inputs(operation: Any) -> bool:
    return bool(operation.path_parameters or operation.query or operation.headers
                or operation.body)
