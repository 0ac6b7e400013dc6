"""The bot's screens: one session ask, rendered. Shared by commands and menu buttons."""

from __future__ import annotations

from yabot.bot import render
from yabot.bot.handle import UserHandle
from yabot.bot.render import Reply
from yabot.bot.texts import text
from yabot.errors import VipRequired
from yabot.sessions.messages import GetShop, GetState, GetVipOffers, GetWallet, ShowFragment


async def menu(user: UserHandle) -> Reply:
    state = await user.ask(GetState())
    return render.menu(state, state.preferences.language)


async def story(user: UserHandle) -> Reply:
    """The user's current fragment; the VIP gate when it is VIP-only and they are not."""
    try:
        view = await user.ask(ShowFragment())
    except VipRequired:
        return Reply(text("vip_gate", await user.language()))
    return render.fragment(view, await user.language())


async def wallet(user: UserHandle) -> Reply:
    view = await user.ask(GetWallet())
    return render.wallet(view, await user.language())


async def shop(user: UserHandle) -> Reply:
    view = await user.ask(GetShop())
    return render.shop(view, await user.language())


async def vip(user: UserHandle) -> Reply:
    view = await user.ask(GetVipOffers())
    return render.vip(view, await user.language())


async def settings(user: UserHandle) -> Reply:
    state = await user.ask(GetState())
    return render.settings(state, state.preferences.language)


async def help_(user: UserHandle) -> Reply:
    return Reply(text("help", await user.language()))
