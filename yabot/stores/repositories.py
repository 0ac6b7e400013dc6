"""What the domain needs from storage, one small interface per aggregate.

Every backend implements these exactly; `tests/stores` runs one contract suite against all.
A write that changes a user takes the change's ``events`` (`yabot.stores.outbox`) and stores
them with the change, atomically: the transactional outbox.
Methods run in the caller's thread: implementations hold only thread-safe pools. Every
implementation raises `StoreUnavailable` when its store cannot answer (retries exhausted, or
the circuit breaker open) and `InvalidRecord` when the store refuses a write.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from yabot.domain.besitos import BalanceChange, LedgerEntry
from yabot.domain.items import Item
from yabot.domain.ledger_pages import LedgerPage
from yabot.domain.narrative import Fragment
from yabot.domain.subscriptions import Subscription, SubscriptionStatus
from yabot.domain.users import UserChanges, UserDocument, UserProfile
from yabot.stores.outbox import EventDrafts, PendingTransfer, no_events


class UserDocuments(Protocol):
    """The ``users`` documents."""

    def get(self, user_id: int) -> UserDocument | None:
        """The user's document, or None."""

    def get_many(self, user_ids: Sequence[int]) -> dict[int, UserDocument]:
        """The documents of those of ``user_ids`` that have one, in one round trip (keep it
        to a few hundred ids)."""

    def create_if_absent(self, document: UserDocument) -> tuple[UserDocument, bool]:
        """Store ``document`` unless one exists for its user; return the stored one and
        whether this call created it. Idempotent and safe to race."""

    def update(self, user_id: int, changes: UserChanges, *,
               events: EventDrafts = no_events) -> UserDocument:
        """Write the fields ``changes`` sets (nothing else) and ``events``, atomically; the
        document after it. `UserNotFound` if no user."""

    def add_to_inventory(self, user_id: int, sku: str, *, events: EventDrafts = no_events,
                         settles: str | None = None) -> UserDocument:
        """Put ``sku`` into the user's inventory unless it is there (idempotent), with
        ``events``; the document after it. ``settles``: the key of the pending gift this
        delivers (`BesitosLedger.settle`). `UserNotFound` if no user."""

    def record_events(self, user_id: int, events: EventDrafts) -> UserDocument:
        """Store ``events`` of a change that touched no document (an update received, a
        reaction), with the user's next ``seq``s. `UserNotFound` if no user."""

    def flush_parked(self, limit: int = 100) -> int:
        """Copy events a crash left parked with their change to the outbox (the `mongo`
        backend; nothing to do on `sql`); how many users had some."""


class UserProgress(Protocol):
    """What outlives any one session of a user, in whichever process: the ids of the user's
    last handled Telegram updates. Stored next to the user's record; a user without a row
    reads as no updates. (The user's event ``seq`` is allocated with each change, in its
    transaction, by the repositories that store the change.)"""

    def handled_updates(self, user_id: int) -> list[int]:
        """The user's most recently handled update ids, oldest first."""

    def record_update(self, user_id: int, update_id: int, window: int) -> None:
        """Remember ``update_id`` as handled, keeping the newest ``window`` ids."""


class UserProfiles(Protocol):
    """The ``user_profiles`` rows."""

    def get(self, user_id: int) -> UserProfile | None:
        """The user's profile, or None."""

    def create_if_absent(self, profile: UserProfile) -> bool:
        """Insert ``profile`` unless a row exists; True when this call inserted it."""


class NarrativeFragments(Protocol):
    """The ``narrative_fragments`` documents (the story), keyed by fragment id."""

    def get(self, fragment_id: str) -> Fragment | None:
        """The fragment, or None."""

    def put(self, fragment: Fragment) -> None:
        """Store ``fragment``, replacing any fragment with its id (loading the story)."""


class ItemCatalogue(Protocol):
    """The ``items`` documents, keyed by sku."""

    def get(self, sku: str) -> Item | None:
        """The item, or None."""

    def put(self, item: Item) -> None:
        """Store ``item``, replacing any item with its sku."""

    def all(self) -> list[Item]:
        """Every item, by sku."""


class BesitosLedger(Protocol):
    """Users' balances (in their documents) and the ``besitos_ledger`` of applied changes."""

    def debit(self, user_id: int, amount: int, key: str, reason: str = "",
              request: str | None = None, *, events: EventDrafts = no_events,
              pending: PendingTransfer | None = None) -> BalanceChange:
        """Take ``amount`` from the user's balance if it is at least ``amount`` and ``key`` was
        never applied; record the change under ``key`` (with the ``request`` fingerprint).
        The balance never goes negative, and a key applies at most once, even when callers
        race. ``events`` and ``pending`` (the transfer's second half) are stored with the
        change or not at all. `UserNotFound` if no user."""

    def credit(self, user_id: int, amount: int, key: str, reason: str = "",
               request: str | None = None, *, events: EventDrafts = no_events,
               settles: str | None = None) -> BalanceChange:
        """Add ``amount`` unless ``key`` was applied before; record it under ``key``, with
        ``events``; ``settles``: the key of the pending transfer this credit finishes.
        `BalanceLimit` (nothing written) when the balance would pass
        `yabot.domain.besitos.MAX_BESITOS`, even when callers race."""

    def pending_transfers(self, older_than: datetime, limit: int = 100
                          ) -> list[PendingTransfer]:
        """Pending transfers and gifts recorded at or before ``older_than``, oldest first."""

    def settle(self, key: str) -> bool:
        """Forget the pending transfer debited under ``key`` (finished or refunded); False if
        there was none."""

    def entries(self, user_id: int, limit: int = 50) -> list[LedgerEntry]:
        """The user's applied changes, newest first."""

    def page(self, user_id: int, limit: int, cursor: str | None = None) -> LedgerPage:
        """At most ``limit`` of the user's applied changes, newest first, after the entry
        ``cursor`` (a `LedgerPage.next_cursor` this backend returned for this user) or from the
        newest. Paging from the first page to the last returns every entry recorded before
        the first page was read exactly once. `InvalidInput` for a cursor that is not one."""

    def get(self, key: str) -> LedgerEntry | None:
        """The change recorded under ``key``, or None."""

    def mark_compensated(self, key: str) -> bool:
        """Mark the change under ``key`` as undone by a compensating entry; False if none."""

    def earned_since(self, user_id: int, reason: str, since: datetime) -> int:
        """Besitos credited to the user with exactly ``reason`` at or after ``since``."""


class Subscriptions(Protocol):
    """The ``subscriptions`` rows; a user has at most one ``active`` subscription."""

    def start(self, subscription: Subscription) -> Subscription:
        """Store ``subscription`` as the user's active one, cancelling the previous active one
        in the same transaction; return it with its id. `InvalidRecord` if the user has no
        profile or a constraint refuses it (nothing is written then)."""

    def current(self, user_id: int) -> Subscription | None:
        """The user's active subscription, or None."""

    def latest(self, user_id: int) -> Subscription | None:
        """The user's most recently started subscription, whatever its status, or None."""

    def set_status(self, subscription_id: int, status: SubscriptionStatus) -> Subscription | None:
        """Change a subscription's status; None if there is no such subscription."""

    def expire_due(self, now: datetime) -> int:
        """Mark every active subscription that ended by ``now`` expired; how many were."""
