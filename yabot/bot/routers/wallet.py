"""The wallet: /wallet and the menu's button show the balance and the last movements."""

from __future__ import annotations

from aiogram import Router

from yabot.bot import screens
from yabot.bot.routers.registration import register_screen


def router() -> Router:
    wallet = Router(name="wallet")
    register_screen(wallet, "wallet", screens.wallet)
    return wallet
