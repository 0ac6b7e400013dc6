"""gunicorn's logger, minus the access line nobody reads.

gunicorn builds every request's access-log atoms (a dict of ~20 entries, wrapped) whenever
a ``logconfig_dict`` is set, even though `yabot.logs.gunicorn_logconfig` keeps the
``gunicorn.access`` logger at WARNING, where its INFO lines are dropped: measured at 5% of a
state read's CPU under load. The API logs each request itself (`yabot.api.app`).
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn import glogging  # type: ignore[import-untyped]


class Logger(glogging.Logger):  # type: ignore[misc]
    """Access logging is on where gunicorn would have it on and the access logger emits
    its INFO lines."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self._access_emits: bool = (super().access_log_enabled
                              and self.access_log.isEnabledFor(logging.INFO))

    @property
    def access_log_enabled(self) -> bool:
        return self._access_emits
