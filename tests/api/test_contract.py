"""The API's contract: responses are the API's own models, and the OpenAPI document built from
them is checked in. A response field that appears or disappears changes the document, and this
test fails until the snapshot is updated on purpose:

    .venv/bin/python -m tests.api.test_contract   # rewrite the snapshot and the event schema
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from yabot.api.openapi import openapi_document
from yabot.api.responses import RESPONSES, UserStateResponse
from yabot.domain.users import UserDocument, UserProfile
from yabot.events.models import EVENT_ADAPTER
from yabot.views import Preferences, SubscriptionView, UserState

SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")
#: The event stream's contract for consumers (README, "Event stream for consumers").
EVENTS_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "events.schema.json"


def events_schema() -> dict[str, Any]:
    return EVENT_ADAPTER.json_schema(mode="serialization")


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


def test_the_published_event_schema_is_the_checked_in_one() -> None:
    assert events_schema() == json.loads(EVENTS_SCHEMA.read_text()), (
        "an event's shape changed: consumers read docs/events.schema.json; review, then run "
        "`.venv/bin/python -m tests.api.test_contract` to update it"
    )


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    EVENTS_SCHEMA.write_text(json.dumps(events_schema(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT} and {EVENTS_SCHEMA}")
