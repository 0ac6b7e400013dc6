"""The bot's routers, one per feature. Each module's `router()` builds a fresh `Router`
(a router can be attached to one Dispatcher only, and tests and tools build several)."""

from __future__ import annotations

from aiogram import Router

from yabot.bot.routers import commands, fallback, membership, reactions, shop, story, wallet


def all_routers() -> list[Router]:
    """Every router, in matching order (the fallback last)."""
    return [commands.router(), story.router(), wallet.router(), shop.router(),
            reactions.router(), membership.router(), fallback.router()]
