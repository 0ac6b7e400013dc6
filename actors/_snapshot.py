"""Snapshot: replies a keyed actor publishes so that reads of an idle key skip its mailbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors._message import Message


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The replies a keyed actor would give to some asks if it handled them now.

    A keyed actor returns one from `Actor.snapshot`; its `KeyedActors` registry takes it after
    every message the actor handles, before that message's reply is released, and drops it
    when the incarnation ends. An ask equal to a key of ``replies``, for a key that is live
    and idle (nothing in its mailbox, no message being handled) within ``fresh_for`` seconds
    of the publication, is answered with the value in the asker's thread, without a trip
    through the mailbox. So whatever was answered before the ask was sent is visible to it,
    and an ask sent behind a queued message still waits for that message.

    The values are shared by every reader: they must be immutable (frozen models, tuples).
    An actor that cannot say how long a reply stays true publishes nothing (None).

    ``basis`` is what the replies were computed from (None: nothing to check them against).
    Someone who can tell that the basis is still true — its source unchanged — may renew the
    snapshot (`KeyedActors.expiring`, `KeyedActors.renew`) without a message to the actor,
    but never past ``renewable_for`` seconds after the publication (a reply that changes with
    time alone, whatever the source says).
    """

    replies: Mapping[Message, Any]
    fresh_for: float = float("inf")
    basis: object = None
    renewable_for: float = float("inf")
