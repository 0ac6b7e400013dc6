"""`BesitosService` on both document backends: what counts as a replay of an idempotency key."""

from __future__ import annotations

import pytest

from tests.support.stores import create
from yabot.domain.besitos import TransactionKind
from yabot.errors import IdempotencyConflict
from yabot.services.besitos import BesitosService
from yabot.stores.handles import Stores

A, B = 1, 2


@pytest.mark.parametrize("kind", ["earn", "spend", "transfer"])
def test_a_key_reused_with_another_reason_is_a_conflict_not_a_replay(
    stores: Stores, kind: TransactionKind
) -> None:
    create(stores, A, besitos=10)
    create(stores, B)
    service = BesitosService(stores)
    to = B if kind == "transfer" else None
    first = service.process_transaction(A, kind, 3, "k", to, "for the quest")
    assert first.applied
    for reason in ("for another quest", "", "r" * 256):
        with pytest.raises(IdempotencyConflict):
            service.process_transaction(A, kind, 3, "k", to, reason)
    again = service.process_transaction(A, kind, 3, "k", to, "for the quest")
    assert (again.applied, again.balance) == (False, first.balance)
    assert service.balance(A) == first.balance
