"""Events: typed models, the Redis Streams bus with its SQL outbox, the idempotent processor.

Users import from here::

    from yabot.events import Events, Handlers, UserInteraction, parse_event
"""

from yabot.events.bus import EventBus, Events
from yabot.events.counters import EventCounters, event_counters
from yabot.events.groups import ConsumerGroup, Handler, Handlers
from yabot.events.models import (
    BaseEvent,
    BesitosTransferred,
    Event,
    FragmentReached,
    ReactionDetected,
    SubscriptionChanged,
    UpdateReceived,
    UserInteraction,
    parse_event,
)
from yabot.events.ordering import OrderingBuffer
from yabot.events.processor import EventProcessor, StreamConsumer
from yabot.events.relay import OutboxRelay, OutboxSink
from yabot.events.supervisor import events_supervisor

__all__ = [
    "BaseEvent",
    "BesitosTransferred",
    "ConsumerGroup",
    "Event",
    "EventBus",
    "EventCounters",
    "EventProcessor",
    "Events",
    "FragmentReached",
    "Handler",
    "Handlers",
    "OrderingBuffer",
    "OutboxRelay",
    "OutboxSink",
    "ReactionDetected",
    "StreamConsumer",
    "SubscriptionChanged",
    "UpdateReceived",
    "UserInteraction",
    "event_counters",
    "events_supervisor",
    "parse_event",
]
