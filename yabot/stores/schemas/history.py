"""Validators as earlier migration steps set them, so a downgrade can put them back.

Frozen copies: never edit one; a new shape is a new step with the current validators of
`yabot.stores.schemas.collections`.
"""

from __future__ import annotations

from typing import Any

#: The validators of MongoDB step 1 (before localized fragments, preferences, ledger marks).
VALIDATORS_V1: dict[str, dict[str, Any]] = {
    "users": {
        "$jsonSchema": {
            "bsonType": "object",
            "required": ["user_id", "besitos", "language", "created_at"],
            "properties": {
                "user_id": {"bsonType": ["int", "long"], "minimum": 1},
                "besitos": {"bsonType": ["int", "long"], "minimum": 0},
                "language": {"enum": ["es", "en"]},
                "current_fragment": {"bsonType": ["string", "null"]},
                "inventory": {"bsonType": "array", "items": {"bsonType": "string"}},
                "ledger_keys": {"bsonType": "array", "items": {"bsonType": "string"}},
                "created_at": {"bsonType": "date"},
            },
        }
    },
    "narrative_fragments": {
        "$jsonSchema": {
            "bsonType": "object",
            "required": ["fragment_id", "text", "vip_only", "choices"],
            "properties": {
                "fragment_id": {"bsonType": "string", "minLength": 1},
                "title": {"bsonType": "string"},
                "text": {"bsonType": "string", "minLength": 1},
                "vip_only": {"bsonType": "bool"},
                "choices": {
                    "bsonType": "array",
                    "items": {
                        "bsonType": "object",
                        "required": ["choice_id", "text", "next_fragment"],
                        "properties": {
                            "choice_id": {"bsonType": "string"},
                            "text": {"bsonType": "string"},
                            "next_fragment": {"bsonType": "string"},
                            "cost_besitos": {"bsonType": ["int", "long"], "minimum": 0},
                            "requires_vip": {"bsonType": "bool"},
                        },
                    },
                },
            },
        }
    },
    "items": {
        "$jsonSchema": {
            "bsonType": "object",
            "required": ["sku", "name", "price_besitos"],
            "properties": {
                "sku": {"bsonType": "string", "minLength": 1},
                "name": {"bsonType": "string", "minLength": 1},
                "description": {"bsonType": "string"},
                "price_besitos": {"bsonType": ["int", "long"], "minimum": 0},
                "vip_only": {"bsonType": "bool"},
            },
        }
    },
    "besitos_ledger": {
        "$jsonSchema": {
            "bsonType": "object",
            "required": ["key", "user_id", "amount", "balance_after", "created_at"],
            "properties": {
                "key": {"bsonType": "string", "minLength": 1},
                "user_id": {"bsonType": ["int", "long"], "minimum": 1},
                "amount": {"bsonType": ["int", "long"], "not": {"enum": [0]}},
                "balance_after": {"bsonType": ["int", "long"], "minimum": 0},
                "reason": {"bsonType": "string"},
                "created_at": {"bsonType": "date"},
            },
        }
    },
}


#: The validators of ``users`` and ``besitos_ledger`` as MongoDB step 3 set them (before the
#: money bound of step 4).
MONEY_UNBOUNDED_V3: dict[str, dict[str, Any]] = {
    "users": {"$jsonSchema": {
        "bsonType": "object",
        "required": ["user_id", "besitos", "language", "created_at"],
        "properties": {
            "user_id": {"bsonType": ["int", "long"], "minimum": 1},
            "besitos": {"bsonType": ["int", "long"], "minimum": 0},
            "language": {"enum": ["es", "en"]},
            "notifications": {"bsonType": "bool"},
            "current_fragment": {"bsonType": ["string", "null"]},
            "inventory": {"bsonType": "array", "items": {"bsonType": "string"}},
            "ledger_keys": {"bsonType": "array", "items": {"bsonType": "string"}},
            "created_at": {"bsonType": "date"},
        },
    }},
    "besitos_ledger": {"$jsonSchema": {
        "bsonType": "object",
        "required": ["key", "user_id", "amount", "balance_after", "created_at"],
        "properties": {
            "key": {"bsonType": "string", "minLength": 1},
            "user_id": {"bsonType": ["int", "long"], "minimum": 1},
            "amount": {"bsonType": ["int", "long"], "not": {"enum": [0]}},
            "balance_after": {"bsonType": ["int", "long"], "minimum": 0},
            "reason": {"bsonType": "string"},
            "request": {"bsonType": ["string", "null"]},
            "compensated": {"bsonType": "bool"},
            "created_at": {"bsonType": "date"},
        },
    }},
}
