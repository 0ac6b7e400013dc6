"""``GET /stats/daily?from=&to=``: the daily figures the ``stats`` consumer group keeps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import falcon

from yabot.api.openapi import problem_response
from yabot.api.policy import RoutePolicy, requires
from yabot.api.strict import single
from yabot.errors import InvalidInput, Unprocessable
from yabot.events.stats import COUNTS, DailyFigures

#: The most days one request may ask for (a year and a day: a leap year's worth, inclusive).
MAX_DAYS = 366

#: Reads the figures of the days ``first``..``last`` (inclusive).
DailyFiguresSource = Callable[[date, date], Sequence[DailyFigures]]


def parse_day(raw: str | None, name: str, default: date) -> date:
    """A ``YYYY-MM-DD`` query value (``default`` when absent), or `InvalidInput` (an empty
    value too: the schema's ``format: date`` refuses it)."""
    if raw is None:
        return default
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a date as YYYY-MM-DD") from None


def _day_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string", "format": "date"}}


class DailyStatsResource:
    """``GET /stats/daily``: one entry per UTC day from ``from`` to ``to`` (inclusive; both
    default to today, at most `MAX_DAYS` days), zeros for days with nothing counted."""

    policy: ClassVar[RoutePolicy] = requires(GET="stats:read")
    openapi: ClassVar[dict[str, Any]] = {"get": {
        "summary": "Per-day figures: starts, choices, purchases, besitos earned and spent, "
                   "VIP starts and lapses (UTC days)",
        "security": [{"bearerAuth": ["stats:read"]}],
        "parameters": [_day_parameter("from", "First day (default: today, UTC)"),
                       _day_parameter("to", "Last day, inclusive (default: today, UTC)")],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["from", "to", "days"],
                "properties": {
                    "from": {"type": "string", "format": "date"},
                    "to": {"type": "string", "format": "date"},
                    "days": {"type": "array", "items": {
                        "type": "object", "required": ["day", *COUNTS],
                        "properties": {
                            "day": {"type": "string", "format": "date"},
                            **{name: {"type": "integer", "minimum": 0} for name in COUNTS},
                        },
                    }},
                },
            }}}},
            **{str(status): problem_response(status) for status in (400, 401, 403, 422, 429, 503)},
        },
    }}

    def __init__(self, source: DailyFiguresSource) -> None:
        self._source = source

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        today = datetime.now(UTC).date()
        # Falcon drops blank values (`?to=`) by default; they are malformed dates here.
        query = falcon.uri.parse_query_string(req.query_string, keep_blank=True)
        last = parse_day(single(query.get("to")), "to", today)
        first = parse_day(single(query.get("from")), "from", last)
        if first > last:
            raise Unprocessable("from must not be after to")
        if (last - first).days + 1 > MAX_DAYS:
            raise Unprocessable(f"at most {MAX_DAYS} days per request")
        figures = self._source(first, last)
        resp.media = {"from": first.isoformat(), "to": last.isoformat(),
                      "days": [day.model_dump(mode="json") for day in figures]}
