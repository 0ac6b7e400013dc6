"""The relational schema: one MetaData for every SQL table, including the document tables
the embedded `sql` document backend keeps JSON in."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

user_profiles = Table(
    "user_profiles",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("first_name", String(256), nullable=False, default=""),
    Column("username", String(64)),
    Column("language_code", String(16)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Documents of the embedded `sql` backend: one row per document, the body as JSON.
user_documents = Table(
    "user_documents",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("document", JSON, nullable=False),
)

# Events that could not reach Redis yet. `position` is the publish order the replayer keeps.
event_outbox = Table(
    "event_outbox",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("stream", String(128), nullable=False),
    Column("body", Text, nullable=False),  # the event's JSON, exactly as it will be published
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Idempotency of consumers: an event handled by a consumer group is recorded here once.
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer_group", String(128), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("consumer_group", "event_id"),
)

# Events a consumer gave up on after its retries, with the last error.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consumer_group", String(128), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("stream", String(128), nullable=False),
    Column("body", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
)
