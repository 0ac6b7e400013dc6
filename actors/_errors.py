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
