"""The bot's buttons: one `CallbackData` class per kind of press, never hand-split strings.

Telegram limits callback data to 64 bytes; aiogram refuses to pack more (ValueError). Story
and item ids are short slugs, so the packed forms stay well inside the limit.

The fields carry the domain's constraints (`Sku`, `FragmentId`, `ChoiceId`): button data that
does not fit them (``b:-5``, ``c:../x``) matches no button's filter and reaches the fallback,
which answers "that button no longer works", never a handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from yabot.bot.texts import text
from yabot.domain.items import Sku
from yabot.domain.narrative import ChoiceId, FragmentId
from yabot.domain.payments import OfferId
from yabot.domain.users import Language

MenuTarget = Literal["story", "wallet", "shop", "vip", "help", "settings"]


class MenuAction(CallbackData, prefix="m"):
    """A main-menu button."""

    target: MenuTarget


class StoryChoice(CallbackData, prefix="c"):
    """A choice button, tied to the fragment it was shown for (so an old button is stale)."""

    fragment: FragmentId
    choice: ChoiceId


class StoryRestart(CallbackData, prefix="r"):
    """"Start again" under an ending (tied to it, so an old button is stale)."""

    fragment: FragmentId


class SettingsChange(CallbackData, prefix="s"):
    """A button of the /settings screen: one preference set to one value."""

    language: Language | None = None
    notifications: Literal["on", "off"] | None = None


class ShopPurchase(CallbackData, prefix="b"):
    """A "buy" button in the shop."""

    sku: Sku


class VipPurchase(CallbackData, prefix="v"):
    """A "become VIP" button: opens the Stars invoice for one offer."""

    offer: OfferId


def markup(rows: Sequence[Sequence[tuple[str, CallbackData]]]) -> InlineKeyboardMarkup:
    """An inline keyboard from rows of (label, callback data)."""
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=label, callback_data=data.pack()) for label, data in row]
        for row in rows
    ])


def main_menu(language: Language) -> InlineKeyboardMarkup:
    return markup([
        [(text("menu_story", language), MenuAction(target="story"))],
        [(text("menu_wallet", language), MenuAction(target="wallet")),
         (text("menu_shop", language), MenuAction(target="shop"))],
        [(text("menu_vip", language), MenuAction(target="vip")),
         (text("menu_settings", language), MenuAction(target="settings"))],
        [(text("menu_help", language), MenuAction(target="help"))],
    ])
