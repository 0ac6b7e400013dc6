"""Where an ask for a user runs: here when this process owns the user's partition, else at
the owner (`yabot.cluster.forwarding`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from actors import Ask, Message
from yabot.cluster.forwarding import AskForwarder, OwnerMoved, OwnerUnreachable
from yabot.cluster.ownership import RedisOwnership
from yabot.errors import Unavailable
from yabot.intake import partition_of

R = TypeVar("R")


class AskRouter:
    """Decides local or forwarded for each user, and forwards.

    The owner's address of each partition is looked up in Redis (`RedisOwnership.
    owner_address`: one round trip) and kept for ``remember_for`` seconds (the lease renewal
    interval): a forwarded ask is about a third of a process's asks in a two-process
    deployment, and one Redis call each cost as much as the hop itself. A remembered address
    can be stale only in ways that cost nothing but a second look-up: the process there
    answers that it no longer owns the user (`OwnerMoved`, having run nothing), or nobody
    listens there any more (`OwnerUnreachable`, nothing sent). Either way the address is
    looked up afresh and the ask sent once more if the owner is now elsewhere.
    """

    def __init__(self, ownership: RedisOwnership, partitions: int,
                 forwarder: AskForwarder, remember_for: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ownership = ownership
        self._partitions = partitions
        self.forwarder = forwarder
        self._remember_for = remember_for
        self._clock = clock
        self._addresses: dict[int, tuple[str, float]] = {}  # partition -> (address, until)
        self._lock = threading.Lock()

    def owns(self, user_id: int) -> bool:
        return self._ownership.owns(partition_of(user_id, self._partitions))

    def forward(self, user_id: int, message: Ask[R], timeout: float) -> R:
        """Ask the owner of ``user_id``; `Unavailable` (503) while the partition has none."""
        partition = partition_of(user_id, self._partitions)
        address, remembered = self._owner(partition)
        try:
            return self.forwarder.ask(address, user_id, message, timeout)
        except (OwnerMoved, OwnerUnreachable):
            fresh = self._forget_and_look_up(partition, address, remembered)
            if fresh is None:
                raise
        return self.forwarder.ask(fresh, user_id, message, timeout)

    def tell(self, user_id: int, message: Message, timeout: float) -> None:
        """Tell ``user_id``'s session at its owner; raises when it could not be delivered."""
        partition = partition_of(user_id, self._partitions)
        address, remembered = self._owner(partition)
        try:
            self.forwarder.tell(address, user_id, message, timeout)
            return
        except (OwnerMoved, OwnerUnreachable) as error:
            fresh = self._forget_and_look_up(partition, address, remembered)
            if fresh is None:
                raise Unavailable(f"the owner of user {user_id} moved: {error}") from None
        try:
            self.forwarder.tell(fresh, user_id, message, timeout)
        except OwnerMoved as error:
            raise Unavailable(f"the owner of user {user_id} moved: {error}") from None

    def _owner(self, partition: int) -> tuple[str, bool]:
        """The owner's address, and whether it was remembered (rather than looked up now)."""
        now = self._clock()
        with self._lock:
            remembered = self._addresses.get(partition)
        if remembered is not None and now < remembered[1] \
                and remembered[0] != self._ownership.address:
            return remembered[0], True
        return self._look_up(partition), False

    def _look_up(self, partition: int) -> str:
        address = self._ownership.owner_address(partition)
        if address is None or address == self._ownership.address:
            with self._lock:
                self._addresses.pop(partition, None)
            raise Unavailable("the user's partition is moving between processes; retry")
        with self._lock:
            self._addresses[partition] = (address, self._clock() + self._remember_for)
        return address

    def _forget_and_look_up(self, partition: int, failed: str, remembered: bool
                            ) -> str | None:
        """After the owner at ``failed`` refused or was gone: the address to try once more,
        or None (it was looked up just now, or the lease still names the same process)."""
        with self._lock:
            if self._addresses.get(partition, ("", 0.0))[0] == failed:
                del self._addresses[partition]
        if not remembered:
            return None
        fresh = self._look_up(partition)
        return None if fresh == failed else fresh
