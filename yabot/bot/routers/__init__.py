"""The bot's routers, one per feature. Each module's `router()` builds a fresh `Router`
(a router can be attached to one Dispatcher only, and tests and tools build several)."""

from __future__ import annotations

from collections.abc import Collection

from aiogram import Router

from yabot.bot.routers import (
    commands,
    fallback,
    membership,
    payments,
    reactions,
    settings,
    shop,
    story,
    wallet,
)


def all_routers(operators: Collection[int] = ()) -> list[Router]:
    """Every router, in matching order (the fallback last); ``operators`` may /refund."""
    return [commands.router(), story.router(), wallet.router(), shop.router(),
            payments.router(operators), settings.router(), reactions.router(), membership.router(),
            fallback.router()]
