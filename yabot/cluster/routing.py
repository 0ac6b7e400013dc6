"""Where an ask for a user runs: here when this process owns the user's partition, else at
the owner (`yabot.cluster.forwarding`)."""

from __future__ import annotations

from typing import TypeVar

from actors import Ask, Message
from yabot.cluster.forwarding import AskForwarder
from yabot.cluster.ownership import RedisOwnership
from yabot.errors import Unavailable
from yabot.intake import partition_of

R = TypeVar("R")


class AskRouter:
    """Decides local or forwarded for each user, and forwards."""

    def __init__(self, ownership: RedisOwnership, partitions: int,
                 forwarder: AskForwarder) -> None:
        self._ownership = ownership
        self._partitions = partitions
        self.forwarder = forwarder

    def owns(self, user_id: int) -> bool:
        return self._ownership.owns(partition_of(user_id, self._partitions))

    def forward(self, user_id: int, message: Ask[R], timeout: float) -> R:
        """Ask the owner of ``user_id``; `Unavailable` (503) while the partition has none."""
        address = self._ownership.owner_address(partition_of(user_id, self._partitions))
        if address is None or address == self._ownership.address:
            raise Unavailable("the user's partition is moving between processes; retry")
        return self.forwarder.ask(address, user_id, message, timeout)


    def tell(self, user_id: int, message: Message, timeout: float) -> None:
        """Tell ``user_id``'s session at its owner; raises when it could not be delivered."""
        address = self._ownership.owner_address(partition_of(user_id, self._partitions))
        if address is None or address == self._ownership.address:
            raise Unavailable("the user's partition is moving between processes")
        self.forwarder.tell(address, user_id, message, timeout)
