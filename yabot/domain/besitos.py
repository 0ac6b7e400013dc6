"""Besitos, the story's currency: balance changes and the ledger that records each once."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from yabot.domain.users import UserId, UtcDatetime, utcnow
from yabot.errors import InvalidInput

LedgerKey = Annotated[str, Field(min_length=1, max_length=128)]
Amount = Annotated[int, Field(gt=0, lt=2**53)]


class LedgerEntry(BaseModel):
    """One applied balance change. ``key`` is the caller's idempotency key: a change with a
    key already in the ledger is never applied again. ``amount`` is signed (debits < 0)."""

    model_config = ConfigDict(frozen=True)

    key: LedgerKey
    user_id: UserId
    amount: int
    balance_after: Annotated[int, Field(ge=0)]
    reason: Annotated[str, Field(max_length=256)] = ""
    created_at: UtcDatetime = Field(default_factory=utcnow)


class BalanceChange(BaseModel):
    """What a debit or credit did: ``applied`` is False when the balance was too low or the
    key had been applied before; ``balance`` is the balance after the call either way."""

    model_config = ConfigDict(frozen=True)

    applied: bool
    balance: Annotated[int, Field(ge=0)]


def positive(amount: int) -> int:
    """``amount`` if it is a valid amount of besitos to move, else `InvalidInput`."""
    if not 0 < amount < 2**53:
        raise InvalidInput(f"amount: must be a positive number of besitos (got {amount})")
    return amount
