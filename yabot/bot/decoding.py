"""Telegram's updates as aiogram models, one at a time, so that one bad update stops nothing.

aiogram decodes a whole `getUpdates` answer as one list: a single update its models refuse (a
field from a newer or older Bot API, a reaction type it does not know) fails the batch, the
offset never advances, and polling jams for good. `RawGetUpdates` asks for the same method but
takes the answer as plain JSON objects; `decode_update` models each on its own. An update that
cannot be modelled is logged once (warning, with its ``update_id`` and kind), counted in
`telegram_counters`, and skipped: Telegram would send it the same way again, so retrying can
never help.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from aiogram import Bot
from aiogram.methods.base import TelegramMethod
from aiogram.types import Update
from pydantic import ValidationError

from yabot.bot.counters import telegram_counters

log = structlog.get_logger("yabot.bot")

MAX_ERRORS_LOGGED = 3


class RawGetUpdates(TelegramMethod[list[dict[str, Any]]]):
    """``getUpdates``, answered as JSON objects instead of `Update` models."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


def update_id_of(raw: object) -> int | None:
    """The ``update_id`` of a decoded JSON update, if it has a usable one."""
    if not isinstance(raw, dict):
        return None
    value = raw.get("update_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def kind_of(raw: dict[str, Any]) -> str:
    """The update's kind: its one key besides ``update_id`` (``?`` when there is none)."""
    return next((key for key in raw if key != "update_id"), "?")[:64]


def decode_update(raw: dict[str, Any], bot: Bot) -> Update | None:
    """``raw`` as an `Update`; None (logged and counted) when aiogram's models refuse it."""
    try:
        return Update.model_validate(raw, context={"bot": bot})
    except (ValidationError, RecursionError) as exc:
        errors = exc.errors()[:MAX_ERRORS_LOGGED] if isinstance(exc, ValidationError) else []
        log.warning("telegram update cannot be modelled; skipped", update_id=update_id_of(raw),
                    kind=kind_of(raw), fields=[".".join(str(p) for p in e["loc"]) for e in errors])
        telegram_counters.incr("unparseable")
        return None


def decode_batch(raws: Sequence[object], bot: Bot) -> tuple[list[Update], int | None]:
    """The updates of one `getUpdates` answer that can be modelled, and the next offset (one
    past the highest ``update_id`` seen, modelled or not; None when there was none)."""
    updates: list[Update] = []
    highest: int | None = None
    for raw in raws:
        update_id = update_id_of(raw)
        if update_id is None or not isinstance(raw, dict):
            log.warning("telegram sent an update without an update_id; skipped")
            telegram_counters.incr("unparseable")
            continue
        highest = update_id if highest is None else max(highest, update_id)
        update = decode_update(raw, bot)
        if update is not None:
            updates.append(update)
    return updates, (highest + 1 if highest is not None else None)
