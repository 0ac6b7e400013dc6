"""gunicorn config for the runtime-failure test: the production config, plus two faults in
the worker's reads of a user's context (`read_user_context`, run by the user's session actor):

- `STUCK_USER`: the read waits until the worker exits, so the API's ask times out;
- `BROKEN_USER`: the read fails as a dropped connection does, through the SQL store's real
  guard, so its breaker counts the failure (``SQL_BREAKER_FAILURES=1`` opens it).

Every other read is the real one.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # gunicorn runs in a tmp dir

from tests.support.waiting import DEFAULT_CEILING, scaled
from yabot import serving
from yabot.services import users
from yabot.stores.context import UserContext, read_user_context
from yabot.stores.handles import Stores

globals().update(serving.gunicorn_config())

STUCK_USER = 901
BROKEN_USER = 902
#: Set at worker exit: the stuck session then finishes and the actor tree stops.
_released = threading.Event()


def _drop_connection() -> None:
    raise sa_exc.TimeoutError("injected: no pooled connection came free")


def _faulty_read(stores: Stores, user_id: int) -> UserContext:
    if user_id == STUCK_USER:
        _released.wait(scaled(DEFAULT_CEILING))
    elif user_id == BROKEN_USER:
        stores.relational.guard.run(_drop_connection, "read user context")
    return read_user_context(stores, user_id)


def post_worker_init(worker: Any) -> None:
    users.read_user_context = _faulty_read  # type: ignore[attr-defined]
    serving.post_worker_init(worker)


def worker_exit(server: Any, worker: Any) -> None:
    _released.set()
    serving.worker_exit(server, worker)
