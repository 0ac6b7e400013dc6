"""Named crash points: a test hook that ends the process at an exact step of a workflow.

The fault-injection tests start a real process with ``YABOT_CRASH_AT=<name>`` (and
``YABOT_ENV=test``); when the process reaches `crash_point(name)` it exits at once with
`EXIT_CODE`, as ``kill -9`` would leave it: no ``finally``, no flush, no atexit. Anywhere
else (or with the setting unset) `crash_point` is one string comparison.

The points, in the order a change goes from "written" to "published":

- ``store-before-commit``: a change and its outbox rows are written, not committed.
- ``store-after-commit``: a change and its outbox rows are committed (the `mongo` backend:
  parked in the user's document, not yet copied to the SQL outbox).
- ``transfer-debited``: a transfer's or gift's debit (and pending credit) is committed, the
  credit or delivery is not.
- ``choice-paid``: a story choice's cost is committed, the move to its fragment is not.
- ``relay-before-send``: the relay read outbox rows and has not sent them.
- ``relay-after-send``: the relay sent rows and has not deleted them from the outbox.
"""

from __future__ import annotations

import os
import sys

EXIT_CODE = 86
POINTS = frozenset({"store-before-commit", "store-after-commit", "transfer-debited",
                    "choice-paid", "relay-before-send", "relay-after-send"})

_armed: str | None = None


def arm(name: str | None) -> None:
    """Exit at ``name`` from now on (None: disarm). `ValueError` for an unknown point."""
    global _armed
    if name is not None and name not in POINTS:
        raise ValueError(f"no crash point {name!r}; known: {', '.join(sorted(POINTS))}")
    _armed = name


def crash_point(name: str) -> None:
    """Exit the process here if the armed point is ``name``."""
    if _armed == name:
        sys.stderr.write(f"crash point {name}: exiting\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
