"""The relational schema: one MetaData for every SQL table, including the document tables
the embedded `sql` document backend keeps JSON in."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, MetaData, String, Table

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
