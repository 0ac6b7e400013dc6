"""structlog, configured once: JSON lines in production, readable console otherwise.

Request and update handlers bind a ``correlation_id`` with `bind_correlation_id`; the actor
runtime carries context variables into actor threads, so every line a request causes has it.
Values of keys that look secret are masked before rendering, whatever the caller passed.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import MutableMapping
from typing import Any

import structlog

from yabot.settings import Settings

_SECRET_WORDS = ("secret", "token", "password", "authorization", "api_key", "uri", "dsn")


def _mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event:
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "***"
    return event


def configure_logging(settings: Settings) -> None:
    """Set up structlog and route the standard library's logging (pykka, gunicorn) through it."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    renderer: structlog.types.Processor
    if settings.is_production:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.app.log_level)
    # aiogram logs every update at INFO, and pykka logs every error an ask returns to its
    # caller with a traceback at INFO; the caller decides whether those matter.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("pykka").setLevel(logging.WARNING)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def bind_correlation_id(correlation_id: str | None = None) -> str:
    """Bind a correlation id to this context (a fresh one if none is given) and return it."""
    cid = correlation_id or new_correlation_id()
    structlog.contextvars.bind_contextvars(correlation_id=cid)
    return cid
