"""The coordinator: besitos transactions across users and the VIP gate, as one actor.

Users import from here::

    from yabot.coordinator import Coordinator, CoordinatorClient, ProcessTransaction
"""

from yabot.coordinator.actor import Coordinator
from yabot.coordinator.client import Coordination, CoordinatorClient, InlineCoordination
from yabot.coordinator.messages import (
    InteractionOutcome,
    ProcessTransaction,
    ProcessUserInteraction,
    ValidateVipAccess,
    VipAccess,
)

__all__ = [
    "Coordination",
    "Coordinator",
    "CoordinatorClient",
    "InlineCoordination",
    "InteractionOutcome",
    "ProcessTransaction",
    "ProcessUserInteraction",
    "ValidateVipAccess",
    "VipAccess",
]
