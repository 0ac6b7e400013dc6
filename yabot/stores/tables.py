"""The relational schema: one MetaData for every SQL table, including the document tables
the embedded `sql` document backend keeps JSON in."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

from yabot.domain.besitos import MAX_BESITOS

# Named constraints, so migrations and error messages can refer to them the same way on
# every database (https://alembic.sqlalchemy.org/en/latest/naming.html).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

user_profiles = Table(
    "user_profiles",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("first_name", String(256), nullable=False, default=""),
    Column("username", String(64)),
    Column("language_code", String(16)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Documents of the embedded `sql` backend: one row per document, the body as JSON. The
# balance is a column of its own (the JSON copy is ignored) so a debit is one conditional
# UPDATE; the CHECK is the last line of defence against a negative balance.
user_documents = Table(
    "user_documents",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("document", JSON, nullable=False),
    Column("besitos", BigInteger, nullable=False, server_default="0"),
    # Revision 0003 (faults): the ``seq`` of the user's last event, advanced in the same
    # transaction that writes the events to ``event_outbox``: gap-free across restarts.
    Column("event_seq", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("besitos >= 0", name="besitos_not_negative"),
    # Revision 0003_api: the limit `yabot.domain.besitos.MAX_BESITOS` (2^53 - 1).
    CheckConstraint(f"besitos <= {MAX_BESITOS}", name="besitos_at_most_max"),
)

narrative_fragments = Table(
    "narrative_fragments",
    metadata,
    Column("fragment_id", String(128), primary_key=True),
    Column("document", JSON, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("document", JSON, nullable=False),
)

# Every applied balance change, once per idempotency key.
besitos_ledger = Table(
    "besitos_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, unique=True),
    Column("user_id", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("reason", String(256), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Revision 0002: the request's fingerprint (a reused key for another request is a
    # conflict, not a replay) and the mark of a change undone by a compensating entry.
    Column("request", String(64)),
    Column("compensated", Boolean, nullable=False, server_default=false()),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
    CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
    CheckConstraint(f"balance_after <= {MAX_BESITOS}", name="balance_after_at_most_max"),
    CheckConstraint(f"amount BETWEEN {-MAX_BESITOS} AND {MAX_BESITOS}",
                    name="amount_at_most_max"),
    Index(None, "user_id", "id"),
)

# The transactional outbox: every event, written in the transaction of the change it
# describes; the relay publishes rows in `position` order and deletes them once delivered.
event_outbox = Table(
    "event_outbox",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("stream", String(128), nullable=False),
    Column("body", Text, nullable=False),  # the event's JSON, exactly as it will be published
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Revision 0003 (faults): the second half of a transfer or gift, written in the debit's
# transaction and deleted in the transaction that credits the recipient (or refunds the
# sender): a row left here is a workflow a crash interrupted, which the recovery pass finishes.
pending_transfers = Table(
    "pending_transfers",
    metadata,
    Column("key", String(128), primary_key=True),  # the sender's debit ledger key
    Column("from_user_id", BigInteger, nullable=False),
    Column("to_user_id", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("sku", String(64)),  # a gift's item; None for a transfer of besitos
    Column("credit_key", String(128), nullable=False),
    Column("request", String(64)),
    Column("reason", String(256), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "created_at"),
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

# A user's plans over time; at most one is "active" at a time (the repository ensures it).
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "user_id", BigInteger,
        ForeignKey("user_profiles.user_id", ondelete="CASCADE"), nullable=False,
    ),
    Column(
        "plan", Enum("free", "vip", name="subscription_plan", native_enum=False,
                     create_constraint=True, length=16),
        nullable=False,
    ),
    Column(
        "status", Enum("active", "expired", "cancelled", name="subscription_status",
                       native_enum=False, create_constraint=True, length=16),
        nullable=False,
    ),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    Index(None, "user_id", "status"),
)

# VIP paid with Telegram Stars: one row per settled payment, keyed by Telegram's charge id,
# written in the same transaction as the subscription it granted (so a payment Telegram
# reports twice grants once), and marked refunded in the refund's transaction.
star_payments = Table(
    "star_payments",
    metadata,
    Column("charge_id", String(256), primary_key=True),
    Column(
        "user_id", BigInteger,
        ForeignKey("user_profiles.user_id", ondelete="CASCADE"), nullable=False,
    ),
    Column("offer_id", String(32), nullable=False),
    Column("stars", Integer, nullable=False),
    Column("days", Integer, nullable=False),
    Column(
        "status", Enum("paid", "refunded", name="star_payment_status", native_enum=False,
                       create_constraint=True, length=16),
        nullable=False,
    ),
    Column("subscription_id", Integer, ForeignKey("subscriptions.id"), nullable=True),
    Column("paid_at", DateTime(timezone=True), nullable=False),
    Column("refunded_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("stars > 0 AND days > 0", name="positive"),
    Index(None, "user_id"),
)


# Durable timers ("at time T, do X for user U"): one row per job key; scheduling a key again
# moves the job (and bumps `version`, so a firing in flight cannot delete the moved job).
# `lease_*` marks the process firing it: a job is taken by one process at a time, and taken
# again only after its lease expired (the process died mid-fire).
scheduled_jobs = Table(
    "scheduled_jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("kind", String(64), nullable=False),
    Column("user_id", BigInteger),
    Column("payload", JSON, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(128)),
    Column("lease_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "due_at"),
)


# Per-day figures of what users did (UTC days), kept by the `stats` consumer group: each
# event adds to its day's row in the transaction that marks it handled, so a redelivered
# event never counts twice.
daily_stats = Table(
    "daily_stats",
    metadata,
    Column("day", Date, primary_key=True),
    Column("starts", BigInteger, nullable=False, server_default="0"),
    Column("choices", BigInteger, nullable=False, server_default="0"),
    Column("purchases", BigInteger, nullable=False, server_default="0"),
    Column("besitos_earned", BigInteger, nullable=False, server_default="0"),
    Column("besitos_spent", BigInteger, nullable=False, server_default="0"),
    Column("vip_starts", BigInteger, nullable=False, server_default="0"),
    Column("vip_lapses", BigInteger, nullable=False, server_default="0"),
)


# Messages the bot sends unasked (`yabot.notifications`), one per cause: the event that
# called for it (``cause`` = its event id), so a redelivered event never notifies twice.
# Written in the notifications group's transaction; a sender thread sends the rows whose
# ``outcome`` is still NULL and records what happened (sent, blocked, off, no-bot, failed).
notifications = Table(
    "notifications",
    metadata,
    Column("cause", String(36), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(16)),
    Column("settled_at", DateTime(timezone=True)),
    Index(None, "outcome", "created_at"),
)

# Users who blocked the bot (their `my_chat_member` said "kicked"): never sent anything until
# they unblock it. Kept by the notifications group from the "blocked"/"unblocked" actions.
blocked_chats = Table(
    "blocked_chats",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("blocked_at", DateTime(timezone=True), nullable=False),
)


# The durable intake of the embedded default (no Redis): accepted Telegram updates not yet
# handled. A row is inserted before the webhook answers and deleted once handled.
intake_entries = Table(
    "intake_entries",
    metadata,
    Column("position", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("partition", Integer, nullable=False),
    Column("user_key", BigInteger),
    Column("body", Text, nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
    Index(None, "partition", "position"),
)

# What must outlive a user's session in any process, next to the user's record: the ids of
# the user's most recently handled updates (a redelivered update is skipped). The user's
# event ``seq`` is not here: it is allocated with each change (`user_documents.event_seq`).
user_progress = Table(
    "user_progress",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("handled_updates", JSON, nullable=False),
)
