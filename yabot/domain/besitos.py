"""Besitos, the story's currency: balance changes and the ledger that records each once."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from yabot.domain.users import UserId, UtcDatetime, utcnow
from yabot.errors import BalanceLimit, InsufficientBesitos, InvalidInput

#: The most besitos a balance may hold, and so the largest amount one change may move:
#: 2^53 - 1, the largest integer every JSON reader (JavaScript's included) reads exactly and a
#: float holds exactly. Both backends enforce it (a CHECK constraint or ``$jsonSchema``
#: ``maximum``, and a term of the conditional update), and the models below refuse more
#: before anything is written; a change past it is `BalanceLimit` (409 ``balance-limit``).
MAX_BESITOS = 2**53 - 1

LedgerKey = Annotated[str, Field(min_length=1, max_length=128)]
Amount = Annotated[int, Field(gt=0, le=MAX_BESITOS)]
Balance = Annotated[int, Field(ge=0, le=MAX_BESITOS)]
TransactionKind = Literal["earn", "spend", "transfer"]

#: Longest ledger key the stores hold (``besitos_ledger.key``).
MAX_KEY_LENGTH = 128


class LedgerEntry(BaseModel):
    """One applied balance change. ``key`` is the caller's idempotency key: a change with a
    key already in the ledger is never applied again. ``amount`` is signed (debits < 0).

    ``request`` fingerprints the request that made the change (`request_fingerprint`), so a
    key reused for a different request is told apart from a replay; ``compensated`` marks a
    change undone by a compensating entry (a transfer whose credit failed)."""

    model_config = ConfigDict(frozen=True)

    key: LedgerKey
    user_id: UserId
    amount: Annotated[int, Field(ge=-MAX_BESITOS, le=MAX_BESITOS)]
    balance_after: Balance
    reason: Annotated[str, Field(max_length=256)] = ""
    request: Annotated[str, Field(max_length=64)] | None = None
    compensated: bool = False
    created_at: UtcDatetime = Field(default_factory=utcnow)


class BalanceChange(BaseModel):
    """What a debit or credit did: ``applied`` is False when the balance was too low or the
    key had been applied before; ``balance`` is the balance after the call either way."""

    model_config = ConfigDict(frozen=True)

    applied: bool
    balance: Balance


def positive(amount: int) -> int:
    """``amount`` if it is a valid amount of besitos to move, else `InvalidInput`."""
    if not 0 < amount <= MAX_BESITOS:
        raise InvalidInput(
            f"amount: must be a positive number of besitos, at most {MAX_BESITOS} (got {amount})"
        )
    return amount


def ensure_room(balance: int, amount: int) -> None:
    """`BalanceLimit` unless a balance of ``balance`` can take ``amount`` more."""
    if balance > MAX_BESITOS - amount:
        raise BalanceLimit(
            f"{amount} more besitos would take the balance of {balance} past the limit of "
            f"{MAX_BESITOS}"
        )


def ensure_affordable(balance: int, amount: int) -> None:
    """`InsufficientBesitos` unless a balance of ``balance`` covers ``amount``."""
    if amount > balance:
        raise InsufficientBesitos(f"{amount} besitos needed, {balance} available")


def user_key(user_id: int, key: str, suffix: str = "") -> str:
    """The ledger key of a caller's request ``key`` for a user: callers' keys are per user,
    the ledger's are global, so the user id is part of it. A key too long for the store is
    hashed."""
    return _scoped("u", user_id, key, suffix)


def system_key(user_id: int, name: str) -> str:
    """The ledger key of a change the application makes on its own (a reaction's reward, a
    choice's cost): a namespace of its own, so no caller's key can take it first."""
    return _scoped("s", user_id, name, "")


def _scoped(scope: str, user_id: int, key: str, suffix: str) -> str:
    full = f"{scope}{user_id}:{key}{suffix}"
    if len(full) <= MAX_KEY_LENGTH:
        return full
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{scope}{user_id}:#{digest}{suffix}"


def derived_key(ledger_key: str, suffix: str) -> str:
    """The key of an entry that belongs to the one under ``ledger_key`` (e.g. its refund):
    ``<ledger_key><suffix>``, hashed when that would not fit the store."""
    full = ledger_key + suffix
    if len(full) <= MAX_KEY_LENGTH:
        return full
    return f"#{hashlib.sha256(ledger_key.encode()).hexdigest()}{suffix}"


def request_fingerprint(kind: str, amount: int, counterpart: int | None = None,
                        what: str = "") -> str:
    """A short, stable text naming a request: same request, same fingerprint. Callers pass
    every field the caller's request carries (``what``: the item, or the free-text reason;
    it comes last, so no text in it can make two requests read alike), so a key reused for a
    request that differs in any of them is a conflict, never a replay."""
    text = f"{kind}:{amount}:{counterpart or ''}:{what}"
    return text if len(text) <= 64 else hashlib.sha256(text.encode()).hexdigest()


def reaction_award(amount: int, daily_cap: int, earned_today: int) -> int:
    """Besitos a reaction earns when ``earned_today`` were already earned by reactions today:
    ``amount`` until the cap, then what is left under it, then 0."""
    return max(0, min(amount, daily_cap - earned_today))


def day_start(moment: datetime) -> datetime:
    """The start of ``moment``'s UTC day (daily caps reset then)."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)

