"""The `Coordinator` actor: workflows that span users or stores (transfers, gifts, the VIP
gate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from actors import Actor
from yabot.coordinator.client import InlineCoordination
from yabot.coordinator.messages import (
    ProcessTransaction,
    ProcessUserInteraction,
    ValidateVipAccess,
)
from yabot.stores.handles import Stores

log = structlog.get_logger("yabot.coordinator")


class Coordinator(Actor):
    """One per process, a child of ``root`` started after the stores and before the sessions.

    It answers asks from sessions and never asks a session back (so no ask cycle can form):
    what a workflow changes for another user it writes through the repositories, and the
    asking session tells that user's session afterwards. Each workflow step is one atomic
    store operation; a failure after a debit is compensated before the error goes back
    (`BesitosService`). It keeps no state across messages, so a restart loses nothing.

    ``on_start`` (e.g. loading the seed story into an empty store) runs in `pre_start`.
    """

    def __init__(self, stores: Stores, on_start: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._on_start = on_start
        self._workflows = InlineCoordination(stores)

    def pre_start(self) -> None:
        if self._on_start is not None:
            self._on_start()

    def handle(self, message: Any) -> Any:
        match message:
            case ProcessTransaction():
                return self._workflows.process_transaction(message)
            case ValidateVipAccess(user_id=user_id):
                return self._workflows.validate_vip_access(user_id)
            case ProcessUserInteraction():
                return self._workflows.process_user_interaction(message)
        return super().handle(message)
