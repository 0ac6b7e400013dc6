"""The MongoDB collections: `$jsonSchema` validators and indexes, declared once.

Migrations (`yabot.stores.mongo_migrations`) apply them; `yabot migrate` checks after applying
that every declared index and validator is present.
"""

from yabot.stores.schemas.collections import COLLECTIONS, CollectionSchema

__all__ = ["COLLECTIONS", "CollectionSchema"]
