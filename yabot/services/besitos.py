"""BesitosService: earn, spend and transfer under idempotency keys, with compensation.

Each step is one atomic store operation (`BesitosLedger`): a debit is one conditional update
(the balance never goes negative) recorded under a unique ledger key, with its event (the
transactional outbox). A transfer debits the sender and records the pending credit in the
same write, then credits the recipient and forgets the pending credit in the same write; if
the credit fails, it credits the sender back under ``<key>:refund`` (forgetting the pending
credit) and marks the debit ``compensated``, then raises the failure. A crash in between
leaves the pending credit recorded, and `recover` finishes it (credit, or refund when the
credit cannot be made) without any client action. Thread-safe: it holds no state, so it runs
in the calling actor's thread (the `Coordinator`'s, or a session's for one user's own changes).
"""

from __future__ import annotations

from datetime import datetime

import structlog

from actors import Message
from yabot.crashpoints import crash_point
from yabot.domain.besitos import (
    LedgerEntry,
    TransactionKind,
    derived_key,
    positive,
    request_fingerprint,
    user_key,
)
from yabot.domain.users import utcnow
from yabot.errors import (
    IdempotencyConflict,
    InsufficientBesitos,
    InvalidInput,
    InvalidRecord,
    UserNotFound,
)
from yabot.events import drafts as draft
from yabot.events.drafts import Drafts
from yabot.stores.handles import Stores
from yabot.stores.outbox import PendingTransfer

log = structlog.get_logger("yabot.services.besitos")

REFUND = ":refund"
CREDIT = ":credit"


class TransactionOutcome(Message):
    """What `BesitosService.process_transaction` did. ``applied`` False: a replay, nothing
    changed. For a transfer, the recipient's side (``credit_key`` None: not credited now)."""

    kind: TransactionKind
    key: str
    ledger_key: str
    amount: int
    applied: bool
    balance: int
    reason: str
    to_user_id: int | None = None
    credit_key: str | None = None
    recipient_balance: int | None = None


def _updated(outcome: TransactionOutcome, **changes: object) -> TransactionOutcome:
    return outcome.model_copy(update=changes)


class BesitosService:
    def __init__(self, stores: Stores, drafts: Drafts | None = None) -> None:
        self._stores = stores
        self._drafts = drafts or Drafts()

    def balance(self, user_id: int) -> int:
        document = self._stores.documents.users.get(user_id)
        if document is None:
            raise UserNotFound(user_id)
        return document.besitos

    def process_transaction(
        self, user_id: int, kind: TransactionKind, amount: int, key: str,
        to_user_id: int | None = None, reason: str = "",
    ) -> TransactionOutcome:
        """Apply one request once. A replay (same key, same request: every argument but the
        key equal, ``reason`` included) changes nothing and answers ``applied=False``; the same
        key for another request is `IdempotencyConflict`.

        Raises `InsufficientBesitos`, `UserNotFound` (either user), `InvalidInput`.
        """
        positive(amount)
        if kind == "transfer":
            if to_user_id is None:
                raise InvalidInput("to_user_id: a transfer needs a recipient")
            if to_user_id == user_id:
                raise InvalidInput("to_user_id: a transfer to oneself is not a transfer")
        elif to_user_id is not None:
            raise InvalidInput(f"to_user_id: only a transfer has a recipient, not {kind}")
        request = request_fingerprint(kind, amount, to_user_id, reason)
        ledger_key = user_key(user_id, key)
        ledger = self._stores.documents.ledger
        note = (f"{kind}: {reason}" if reason else kind)[:256]
        outcome = TransactionOutcome(kind=kind, key=key, ledger_key=ledger_key, amount=amount,
                                     applied=True, balance=0, reason=note,
                                     to_user_id=to_user_id)

        existing = ledger.get(ledger_key)
        if existing is not None:
            return self._replay(existing, request, outcome)
        signed = amount if kind == "earn" else -amount
        events = self._drafts.of(draft.besitos(user_id, signed, ledger_key, kind))
        if kind == "earn":
            change = ledger.credit(user_id, amount, ledger_key, note, request, events=events)
        else:
            pending = None
            if to_user_id is not None:
                if self._stores.documents.users.get(to_user_id) is None:
                    raise UserNotFound(to_user_id)
                pending = PendingTransfer(
                    key=ledger_key, from_user_id=user_id, to_user_id=to_user_id,
                    amount=amount, credit_key=user_key(user_id, key, CREDIT),
                    created_at=utcnow(), request=request, reason=f"transfer from {user_id}",
                )
            change = ledger.debit(user_id, amount, ledger_key, note, request, events=events,
                                  pending=pending)
        if not change.applied:
            raced = ledger.get(ledger_key)  # a concurrent request with the same key won
            if raced is not None:
                return self._replay(raced, request, outcome)
            raise InsufficientBesitos(f"{amount} besitos needed, {change.balance} available")
        outcome = _updated(outcome, balance=change.balance)
        if kind != "transfer":
            return outcome
        crash_point("transfer-debited")
        return self._credit_recipient(user_id, outcome, request)

    def _credit_recipient(self, user_id: int, outcome: TransactionOutcome,
                          request: str) -> TransactionOutcome:
        assert outcome.to_user_id is not None
        credit_key = user_key(user_id, outcome.key, CREDIT)
        try:
            credited = self._credit(outcome.to_user_id, outcome.amount, credit_key,
                                    f"transfer from {user_id}", request, outcome.ledger_key)
        except Exception:
            log.warning("transfer credit failed; compensating the sender", user_id=user_id,
                        key=outcome.ledger_key, to_user_id=outcome.to_user_id)
            self.compensate(user_id, outcome.amount, outcome.ledger_key, request)
            raise
        return _updated(outcome, credit_key=credit_key, recipient_balance=credited)

    def _credit(self, to_user_id: int, amount: int, credit_key: str, reason: str,
                request: str | None, settles: str) -> int:
        """Credit the recipient of the transfer debited under ``settles`` and forget its
        pending credit, in one write; the recipient's balance after it."""
        ledger = self._stores.documents.ledger
        change = ledger.credit(
            to_user_id, amount, credit_key, reason, request, settles=settles,
            events=self._drafts.of(draft.besitos(to_user_id, amount, credit_key, "transfer")),
        )
        if not change.applied:  # credited before (a crash between the credit and the settle)
            ledger.settle(settles)
        return change.balance

    def recover(self, older_than: datetime, limit: int = 100) -> int:
        """Finish every transfer whose credit a crash left pending since before
        ``older_than``: credit the recipient, or refund the sender when the credit cannot be
        made (the recipient is gone, or the store refuses it). Each finishes once (the
        credit and the refund have keys of their own); returns how many were finished.
        Gifts and purchases pending delivery are `ShopService.recover`'s."""
        ledger = self._stores.documents.ledger
        finished = 0
        for pending in ledger.pending_transfers(older_than, limit):
            if pending.sku is not None:
                continue
            if ledger.get(derived_key(pending.key, REFUND)) is not None:
                ledger.settle(pending.key)  # refunded, then the crash came before the settle
                finished += 1
                continue
            log.warning("finishing an interrupted transfer", key=pending.key,
                        to_user_id=pending.to_user_id)
            try:
                self._credit(pending.to_user_id, pending.amount, pending.credit_key,
                             pending.reason, pending.request, pending.key)
            except (UserNotFound, InvalidRecord):
                self.compensate(pending.from_user_id, pending.amount, pending.key,
                                pending.request)
            finished += 1
        return finished

    def compensate(self, user_id: int, amount: int, ledger_key: str,
                   request: str | None = None) -> int:
        """Undo the debit under ``ledger_key``: credit ``amount`` back under
        ``<ledger_key>:refund`` (`derived_key`; once) and mark the debit compensated; return
        the balance. A failure here is logged loudly and re-raised: the debit then stays
        unmarked and unrefunded, and a replay of the same key finishes the workflow instead
        (credits the recipient, delivers the item)."""
        ledger = self._stores.documents.ledger
        refund_key = derived_key(ledger_key, REFUND)
        try:
            refund = ledger.credit(
                user_id, amount, refund_key, f"refund of {ledger_key}"[:256], request,
                settles=ledger_key,
                events=self._drafts.of(draft.besitos(user_id, amount, refund_key, "refund")),
            )
            if not refund.applied:
                ledger.settle(ledger_key)
            ledger.mark_compensated(ledger_key)
        except Exception:
            log.critical("compensation failed: a debit is not refunded yet", user_id=user_id,
                         key=ledger_key, amount=amount)
            raise
        return refund.balance

    def _replay(self, entry: LedgerEntry, request: str,
                outcome: TransactionOutcome) -> TransactionOutcome:
        if entry.request != request:
            raise IdempotencyConflict(
                f"idempotency key {outcome.key!r} was used for a different request"
            )
        ledger = self._stores.documents.ledger
        if outcome.kind == "transfer":
            refunded = (entry.compensated
                        or ledger.get(derived_key(entry.key, REFUND)) is not None)
            if not refunded and outcome.to_user_id is not None:
                credit_key = user_key(entry.user_id, outcome.key, CREDIT)
                if ledger.get(credit_key) is None:
                    # The debit happened and the credit never did (a crash in between):
                    # this replay finishes the transfer.
                    log.warning("finishing an interrupted transfer", key=entry.key)
                    balance = self.balance(entry.user_id)
                    return self._credit_recipient(
                        entry.user_id, _updated(outcome, balance=balance), request
                    )
                ledger.settle(entry.key)  # credited; a crash may have come before the settle
            if refunded:
                if not entry.compensated:
                    ledger.mark_compensated(entry.key)
                raise IdempotencyConflict(
                    f"the transfer under key {outcome.key!r} failed and was refunded; "
                    "retry with a new key"
                )
        return _updated(outcome, applied=False, balance=self.balance(entry.user_id))

