"""A small typed actor runtime on pykka: supervision, typed ask/tell, keyed per-entity actors.

Users import from here::

    from actors import Actor, Ask, Message, Supervisor, ChildSpec, KeyedActors, ask, tell
"""

from actors._actor import Actor, ActorExit, UnhandledMessage, spawn
from actors._ask import ask, ask_async, tell
from actors._errors import (
    ActorDead,
    ActorError,
    AskTimeout,
    Overloaded,
    Parked,
    Quarantined,
    RestartIntensityExceeded,
    SelfAsk,
    StartFailed,
)
from actors._keyed import KeyedActors, KeyedStatus, ParkedMessage
from actors._message import Ask, Message
from actors._metrics import Metrics, metrics
from actors._snapshot import Snapshot
from actors._supervisor import ChildSpec, Restart, Strategy, Supervisor, WhichChildren

__all__ = [
    "Actor",
    "ActorDead",
    "ActorError",
    "ActorExit",
    "Ask",
    "AskTimeout",
    "ChildSpec",
    "KeyedActors",
    "KeyedStatus",
    "Message",
    "Metrics",
    "Overloaded",
    "Parked",
    "ParkedMessage",
    "Quarantined",
    "Restart",
    "RestartIntensityExceeded",
    "SelfAsk",
    "Snapshot",
    "StartFailed",
    "Strategy",
    "Supervisor",
    "UnhandledMessage",
    "WhichChildren",
    "ask",
    "ask_async",
    "metrics",
    "spawn",
    "tell",
]
