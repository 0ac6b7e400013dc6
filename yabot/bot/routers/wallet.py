"""The wallet has no buttons of its own: /wallet and the menu's button show it (commands).
This router keeps the feature's place in the matching order for what comes next (transfers)."""

from __future__ import annotations

from aiogram import Router


def router() -> Router:
    return Router(name="wallet")
