"""gunicorn config for the baseline of `bench.bot`: YABOT's settings, the bare bot's app."""

from __future__ import annotations

import os
from typing import Any

from bench.bot_bare_app import application
from yabot import serving

globals().update(serving.gunicorn_config())
wsgi_app = "bench.bot_bare_app:application"


def post_worker_init(worker: Any) -> None:
    application.start()


def worker_exit(server: Any, worker: Any) -> None:
    if os.getpid() == worker.pid:
        application.stop()
