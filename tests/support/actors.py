"""The actor test kit as the suite uses it: every wait scaled for a busy machine."""

from __future__ import annotations

from actors.testkit import ActorTestKit
from tests.support.waiting import ASK


def actor_kit() -> ActorTestKit:
    """An `ActorTestKit` whose probes, exit watch and stops wait up to `ASK` seconds."""
    return ActorTestKit(expect_timeout=ASK)
