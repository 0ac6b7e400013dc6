"""The shop: /shop (or the menu) lists the items; a "buy" button spends besitos on one."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery

from yabot.bot import render, screens
from yabot.bot.handle import UpdateNote, UserHandle
from yabot.bot.keyboards import ShopPurchase
from yabot.bot.routers.registration import register_screen
from yabot.bot.texts import error_text
from yabot.errors import Conflict, Forbidden, NotFound
from yabot.sessions.messages import BuyItem


async def buy(callback: CallbackQuery, callback_data: ShopPurchase, user: UserHandle,
              note: UpdateNote, bot: Bot) -> None:
    note.details = {"sku": callback_data.sku}
    # The callback query id is unique per press and the same when Telegram redelivers the
    # update: a redelivered press buys nothing twice.
    key = f"tg-buy:{callback.id}"
    try:
        purchase = await user.ask(BuyItem(sku=callback_data.sku, idempotency_key=key))
    except (Conflict, Forbidden, NotFound) as exc:  # too few besitos, VIP only, gone
        await callback.answer(error_text(exc, user.known_language()), show_alert=True)
        return
    reply = render.purchase(purchase, await user.language())
    await callback.answer()
    await bot.send_message(user.user_id, reply.text)


def router() -> Router:
    shop = Router(name="shop")
    register_screen(shop, "shop", screens.shop)
    shop.callback_query.register(buy, ShopPurchase.filter(), flags={"action": "buy"})
    return shop
