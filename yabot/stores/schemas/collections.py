"""Validators and indexes of every collection the `mongo` backend uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from yabot.domain.besitos import MAX_BESITOS

INTEGER = ["int", "long"]


@dataclass(frozen=True)
class CollectionSchema:
    name: str
    validator: dict[str, Any]
    indexes: list[IndexModel] = field(default_factory=list)

    @property
    def index_names(self) -> set[str]:
        return {str(index.document["name"]) for index in self.indexes}


# A text in both languages (`yabot.domain.texts.Localized`), or a plain string as fragments
# stored before migration step 3 have (the domain reads it as the same text in both).
LOCALIZED: dict[str, Any] = {
    "bsonType": ["object", "string"], "required": ["es", "en"],
    "properties": {"es": {"bsonType": "string"}, "en": {"bsonType": "string"}},
}


def _schema(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"$jsonSchema": {"bsonType": "object", "required": required,
                            "properties": properties}}


USERS = CollectionSchema(
    "users",
    _schema(
        ["user_id", "besitos", "language", "created_at"],
        {
            "user_id": {"bsonType": INTEGER, "minimum": 1},
            "besitos": {"bsonType": INTEGER, "minimum": 0, "maximum": MAX_BESITOS},
            "language": {"enum": ["es", "en"]},
            "notifications": {"bsonType": "bool"},
            "current_fragment": {"bsonType": ["string", "null"]},
            "inventory": {"bsonType": "array", "items": {"bsonType": "string"}},
            "ledger_keys": {"bsonType": "array", "items": {"bsonType": "string"}},
            "created_at": {"bsonType": "date"},
        },
    ),
    [IndexModel([("user_id", ASCENDING)], unique=True, name="user_id_unique")],
)

NARRATIVE_FRAGMENTS = CollectionSchema(
    "narrative_fragments",
    _schema(
        ["fragment_id", "text", "vip_only", "choices"],
        {
            "fragment_id": {"bsonType": "string", "minLength": 1},
            "title": LOCALIZED,
            "text": LOCALIZED,
            "vip_only": {"bsonType": "bool"},
            "choices": {
                "bsonType": "array",
                "items": {
                    "bsonType": "object",
                    "required": ["choice_id", "next_fragment"],
                    "properties": {
                        "choice_id": {"bsonType": "string"},
                        "label": LOCALIZED,
                        "next_fragment": {"bsonType": "string"},
                        "cost_besitos": {"bsonType": INTEGER, "minimum": 0},
                        "reward_besitos": {"bsonType": INTEGER, "minimum": 0},
                        "requires_item": {"bsonType": ["string", "null"]},
                        "requires_vip": {"bsonType": "bool"},
                    },
                },
            },
        },
    ),
    [IndexModel([("fragment_id", ASCENDING)], unique=True, name="fragment_id_unique")],
)

ITEMS = CollectionSchema(
    "items",
    _schema(
        ["sku", "name", "price_besitos"],
        {
            "sku": {"bsonType": "string", "minLength": 1},
            "name": {"bsonType": "string", "minLength": 1},
            "description": {"bsonType": "string"},
            "price_besitos": {"bsonType": INTEGER, "minimum": 0},
            "vip_only": {"bsonType": "bool"},
            "names": {"bsonType": ["object", "null"]},
            "descriptions": {"bsonType": ["object", "null"]},
        },
    ),
    [IndexModel([("sku", ASCENDING)], unique=True, name="sku_unique")],
)

BESITOS_LEDGER = CollectionSchema(
    "besitos_ledger",
    _schema(
        ["key", "user_id", "amount", "balance_after", "created_at"],
        {
            "key": {"bsonType": "string", "minLength": 1},
            "user_id": {"bsonType": INTEGER, "minimum": 1},
            "amount": {"bsonType": INTEGER, "not": {"enum": [0]},
                       "minimum": -MAX_BESITOS, "maximum": MAX_BESITOS},
            "balance_after": {"bsonType": INTEGER, "minimum": 0, "maximum": MAX_BESITOS},
            "reason": {"bsonType": "string"},
            "request": {"bsonType": ["string", "null"]},
            "compensated": {"bsonType": "bool"},
            "created_at": {"bsonType": "date"},
        },
    ),
    [
        IndexModel([("key", ASCENDING)], unique=True, name="key_unique"),
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_recent"),
    ],
)

COLLECTIONS: tuple[CollectionSchema, ...] = (USERS, NARRATIVE_FRAGMENTS, ITEMS, BESITOS_LEDGER)
