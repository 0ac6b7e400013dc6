"""A process for the crash-injection tests: ``python -m tests.support.crash_worker PHASE OPS``.

Settings come from the environment (the test passes ``YABOT_CRASH_AT`` for the phase that
must die at a crash point). Phases:

- ``setup``: create users 1 and 2 (user 1 with besitos), wait until the outbox is relayed.
- ``run``: apply ``OPS`` (comma-separated: ``earn``, ``spend``, ``transfer``, ``gift``,
  ``buy``, ``react``) as user 1, each under a fixed idempotency key; with a crash point armed
  the process is expected to die inside one of them.
- ``recover``: start (the recovery pass runs at start-up), wait until no transfer is pending
  and the outbox is relayed, then replay every op of ``OPS`` with the same keys (a client
  retrying), and wait for the outbox again.

Exit status 0 when the phase finished; `yabot.crashpoints.EXIT_CODE` when a crash point hit.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from actors import Ask
from yabot.domain.users import TelegramIdentity
from yabot.errors import YabotError
from yabot.events.outbox import SqlOutbox
from yabot.runtime import Runtime
from yabot.sessions.messages import BuyItem, GiftItem, React, Start, Transact
from yabot.settings import load_settings

SENDER, RECIPIENT = 1, 2
ASK = 60.0
#: How long a phase may wait for the relay or the recovery pass (a loaded machine is slow;
#: the test's own ceiling is longer).
PATIENCE = 300.0

OPS: dict[str, Callable[[], Ask[Any]]] = {
    "earn": lambda: Transact(kind="earn", amount=10, idempotency_key="op-earn"),
    "spend": lambda: Transact(kind="spend", amount=3, idempotency_key="op-spend"),
    "transfer": lambda: Transact(kind="transfer", amount=5, to_user_id=RECIPIENT,
                                 idempotency_key="op-transfer"),
    "gift": lambda: GiftItem(sku="rose", to_user_id=RECIPIENT, idempotency_key="op-gift"),
    "buy": lambda: BuyItem(sku="lantern", idempotency_key="op-buy"),
    "react": lambda: React(chat_id=SENDER, message_id=1, reaction="👍"),
}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"crash worker: {what} did not happen within {PATIENCE}s")
        time.sleep(0.05)


def main(phase: str, ops: list[str]) -> None:
    runtime = Runtime(load_settings())
    runtime.start()
    try:
        outbox = SqlOutbox(lambda: runtime.stores.relational.engine)
        if phase == "setup":
            for user_id in (SENDER, RECIPIENT):
                runtime.sessions.ask(user_id, Start(identity=TelegramIdentity(
                    user_id=user_id, first_name=f"user{user_id}")), timeout=ASK)
            runtime.sessions.ask(SENDER, Transact(kind="earn", amount=50,
                                                  idempotency_key="setup"), timeout=ASK)
        elif phase in ("run", "recover"):
            if phase == "recover":
                ledger = runtime.stores.documents.ledger
                far = datetime.now(UTC) + timedelta(days=1)
                wait_for(lambda: not ledger.pending_transfers(far), "recovery")
                wait_for(lambda: outbox.count() == 0, "the relay")
            for op in ops:
                try:
                    runtime.sessions.ask(SENDER, OPS[op](), timeout=ASK)
                except YabotError as exc:  # a refunded transfer's key, say: a client's answer
                    print(f"{op}: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            raise SystemExit(f"unknown phase {phase!r}")
        wait_for(lambda: outbox.count() == 0, "the relay")
    finally:
        runtime.stop()


if __name__ == "__main__":
    main(sys.argv[1], [op for op in sys.argv[2].split(",") if op] if len(sys.argv) > 2 else [])
