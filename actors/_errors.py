"""The runtime's failures, all under one base class."""

from __future__ import annotations


class ActorError(Exception):
    """Base class of every error the actor runtime raises."""


class AskTimeout(ActorError):
    """An ask got no reply within its timeout. The message may still be handled later."""


class ActorDead(ActorError):
    """The target actor was stopped, or stopped before it handled the message."""


class SelfAsk(ActorError):
    """An actor asked itself; that would block its own thread forever."""


class StartFailed(ActorError):
    """An actor's `pre_start` raised, or did not finish within the start timeout."""


class RestartIntensityExceeded(ActorError):
    """A supervisor restarted children more often than its intensity allows and gave up."""


class Overloaded(ActorError):
    """A capped `KeyedActors` had no room for another key's actor within its start timeout."""


class Quarantined(ActorError):
    """A key of a `KeyedActors` failed too often and is refused until ``retry_after`` seconds
    have passed; other keys are not affected. Its pending and new messages get this error."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Parked(ActorError):
    """A message equal to one that already failed its key's actor several times: it is set
    aside (counted, listed by `KeyedActors.parked`) instead of being handled again."""
