"""The `Coordinator` actor: workflows that span users or stores (transfers, gifts, the VIP
gate)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from actors import Actor
from yabot.coordinator.client import InlineCoordination
from yabot.coordinator.messages import (
    ProcessTransaction,
    ProcessUserInteraction,
    ValidateVipAccess,
)
from yabot.domain.users import utcnow
from yabot.events.drafts import Drafts
from yabot.periodic import PeriodicThread
from yabot.stores.handles import Stores

log = structlog.get_logger("yabot.coordinator")


@dataclass(frozen=True)
class Recovery:
    """How often the recovery pass runs, and how old a pending transfer must be (seconds)."""

    interval: float
    after: float


class Coordinator(Actor):
    """One per process, a child of ``root`` started after the stores and before the sessions.

    It answers asks from sessions and never asks a session back (so no ask cycle can form):
    what a workflow changes for another user it writes through the repositories, and the
    asking session tells that user's session afterwards. Each workflow step is one atomic
    store operation; a failure after a debit is compensated before the error goes back
    (`BesitosService`). It keeps no state across messages, so a restart loses nothing.

    ``on_start`` (e.g. loading the seed story into an empty store) runs in `pre_start`.
    Then, and every ``recovery.interval`` seconds on a thread of its own, a recovery pass
    finishes the transfers, gifts and purchases a crash left half done (pending for longer
    than ``recovery.after``) and wakes ``relay`` for their events.
    """

    def __init__(self, stores: Stores, on_start: Callable[[], None] | None = None,
                 drafts: Drafts | None = None, recovery: Recovery | None = None,
                 relay: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._on_start = on_start
        self._workflows = InlineCoordination(stores, drafts)
        self._recovery = recovery
        self._relay = relay
        self._recovering: PeriodicThread | None = None

    def pre_start(self) -> None:
        if self._on_start is not None:
            self._on_start()
        if self._recovery is not None:
            self._recovering = PeriodicThread("transfer-recovery", self._recovery.interval,
                                              self.recover).start()
            self._recovering.wake()

    def post_stop(self) -> None:
        if self._recovering is not None:
            self._recovering.stop()

    def recover(self) -> int:
        """One recovery pass (thread-safe; the workflows hold no state)."""
        after = self._recovery.after if self._recovery is not None else 0.0
        finished = self._workflows.recover(utcnow() - timedelta(seconds=after))
        if finished:
            log.warning("recovered interrupted transfers", count=finished)
            if self._relay is not None:
                self._relay()
        return finished

    def handle(self, message: Any) -> Any:
        match message:
            case ProcessTransaction():
                return self._workflows.process_transaction(message)
            case ValidateVipAccess(user_id=user_id):
                return self._workflows.validate_vip_access(user_id)
            case ProcessUserInteraction():
                return self._workflows.process_user_interaction(message)
        return super().handle(message)
