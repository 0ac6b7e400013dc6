"""gunicorn config for the escalation test: the production config, plus a thread in the
worker that fails the root's ``stores`` child until the root supervisor gives up."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # gunicorn runs in a tmp dir

from actors.testkit import crash
from tests.support.waiting import DEFAULT_CEILING, scaled
from yabot import serving

globals().update(serving.gunicorn_config())


def _fail_stores_repeatedly() -> None:
    runtime = serving.application.runtime
    assert runtime is not None
    previous = None
    deadline = time.monotonic() + scaled(DEFAULT_CEILING)
    while runtime.running and time.monotonic() < deadline:
        stores = runtime.find("stores")
        if stores is not None and stores is not previous and stores.is_alive():
            crash(stores)
            previous = stores
        time.sleep(0.01)


def post_worker_init(worker: Any) -> None:
    serving.post_worker_init(worker)
    threading.Thread(target=_fail_stores_repeatedly, name="escalate", daemon=True).start()
