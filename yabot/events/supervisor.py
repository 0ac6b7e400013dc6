"""The ``events`` subtree: the bus, then the processor, restarted one for one."""

from __future__ import annotations

from collections.abc import Sequence

from actors import ChildSpec, Strategy, Supervisor
from yabot.events.bus import EventBus, Events
from yabot.events.groups import ConsumerGroup, Handlers
from yabot.events.processor import EventProcessor
from yabot.settings import Settings
from yabot.stores.handles import Stores


def events_supervisor(
    settings: Settings, stores: Stores, events: Events,
    groups: Sequence[ConsumerGroup] | Handlers,
) -> Supervisor:
    """Bus and processor share nothing but Redis and the SQL store, so one_for_one: a
    crashed consumer loop does not interrupt publishing, nor the other way round.

    ``groups`` may be a bare `Handlers`: the default group (``EVENTS_CONSUMER_GROUP``).
    """
    if isinstance(groups, Handlers):
        groups = [ConsumerGroup(settings.events.consumer_group, groups)]
    return Supervisor(
        "events",
        [
            ChildSpec("bus", lambda: EventBus(settings, stores, events)),
            ChildSpec("processor", lambda: EventProcessor(settings, stores, groups)),
        ],
        strategy=Strategy.ONE_FOR_ONE,
    )
