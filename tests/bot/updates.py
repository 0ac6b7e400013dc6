"""Telegram updates for tests, built from the realistic payloads in tests/fixtures/telegram/."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "telegram"
FIXTURE_USER = 987654321  # the user id in every fixture
_message_ids = itertools.count(10_000)


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def for_user(update: dict[str, Any], user_id: int, language: str | None = None) -> dict[str, Any]:
    """``update`` with the fixture's user (and private chat) replaced by ``user_id``."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            if language is not None and "language_code" in out:
                out["language_code"] = language
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return user_id if value == FIXTURE_USER else value

    result: dict[str, Any] = walk(copy.deepcopy(update))
    return result


def message(user_id: int, text: str, *, language: str = "en", update_id: int | None = None,
            message_id: int | None = None) -> dict[str, Any]:
    """A private text message (a command when ``text`` starts with ``/``)."""
    update = for_user(load("message"), user_id, language)
    body = update["message"]
    body["text"] = text
    body["message_id"] = message_id if message_id is not None else next(_message_ids)
    if text.startswith("/"):
        body["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    else:
        body.pop("entities", None)
    return _with_id(update, update_id)


def press(user_id: int, data: str, *, message_id: int, text: str = "", language: str = "en",
          callback_id: str | None = None, update_id: int | None = None) -> dict[str, Any]:
    """The user pressed the inline button ``data`` under the bot's message ``message_id``."""
    update = for_user(load("callback_query"), user_id, language)
    query = update["callback_query"]
    query["id"] = callback_id or f"cb-{user_id}-{next(_message_ids)}"
    query["data"] = data
    query["message"]["message_id"] = message_id
    query["message"]["text"] = text or "…"
    query["message"].pop("reply_markup", None)
    return _with_id(update, update_id)


def reaction(user_id: int, message_id: int, emoji: str = "❤", *, language: str = "en",
             update_id: int | None = None) -> dict[str, Any]:
    update = for_user(load("message_reaction"), user_id, language)
    update["message_reaction"]["message_id"] = message_id
    update["message_reaction"]["new_reaction"] = [{"type": "emoji", "emoji": emoji}]
    return _with_id(update, update_id)


def _with_id(update: dict[str, Any], update_id: int | None) -> dict[str, Any]:
    """With ``update_id`` for the webhook; without one for the fake's getUpdates (it numbers)."""
    update.pop("update_id", None)
    return update if update_id is None else {"update_id": update_id, **update}
