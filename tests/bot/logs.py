"""Capturing structlog events (with their bound context) in a test."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.testing import LogCapture

from yabot.logs import merge_context


@contextmanager
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log event while inside, context variables (update_id, correlation_id) merged."""
    previous = structlog.get_config()
    capture = LogCapture()
    structlog.configure(processors=[merge_context, capture],
                        cache_logger_on_first_use=False)
    try:
        yield capture.entries
    finally:
        structlog.configure(**previous)
