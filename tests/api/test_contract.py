"""The API's contract: responses are the API's own models, and the OpenAPI document built from
them is checked in. A response field that appears or disappears changes the document, and this
test fails until the snapshot is updated on purpose:

    .venv/bin/python -m tests.api.test_contract   # rewrite tests/api/openapi.snapshot.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from yabot.api.openapi import openapi_document
from yabot.api.responses import RESPONSES, UserStateResponse
from yabot.domain.users import UserDocument, UserProfile
from yabot.views import Preferences, SubscriptionView, UserState

SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")


def current() -> dict[str, Any]:
    document = openapi_document()
    document["info"].pop("version")  # releases change it; the contract is the rest
    return document


def test_the_openapi_document_is_the_checked_in_snapshot() -> None:
    snapshot = json.loads(SNAPSHOT.read_text())
    assert current() == snapshot, (
        "the API contract changed: review the difference, then run "
        "`.venv/bin/python -m tests.api.test_contract` to update the snapshot"
    )


def test_every_response_model_is_documented_with_exactly_its_fields() -> None:
    schemas = current()["components"]["schemas"]
    for model in RESPONSES:
        schema = schemas[model.__name__]
        assert set(schema["properties"]) == set(model.model_fields), model.__name__
        assert schema["additionalProperties"] is False, model.__name__
        assert set(schema["required"]) == set(model.model_fields), model.__name__


def test_a_state_does_not_follow_storage_fields() -> None:
    """Fields storage adds to its records do not reach the API; each field appears once."""
    document = UserDocument(user_id=7, besitos=3, language="es")
    profile = UserProfile(user_id=7, first_name="Ana", language_code="es")
    state = UserState(document=document, profile=profile,
                      preferences=Preferences(language="es", notifications=False),
                      subscription=SubscriptionView(plan="free"))
    body = UserStateResponse.of(state).model_dump(mode="json")
    flat = json.dumps(body)
    assert flat.count('"user_id"') == 1
    assert flat.count('"language"') == 1
    assert flat.count('"created_at"') == 1
    assert flat.count('"notifications"') == 1
    assert body["besitos"] == 3


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
