"""What became of an update handed to the bot (no aiogram here: the webhook route and the
metrics are served before the bot has been imported)."""

from __future__ import annotations

import enum


class Accepted(enum.Enum):
    QUEUED = "queued"  # stored in the intake: it will be handled
    IGNORED = "ignored"  # a valid update of a kind the bot does not handle
    BUSY = "busy"  # too many updates pending
    STOPPED = "stopped"  # the runner is not running (or not yet)
    UNSTORED = "unstored"  # the intake could not store it
