"""VIP with Telegram Stars: the /vip screen's buttons open an invoice (currency ``XTR``);
Telegram's pre-checkout query is answered (within its 10 s) after the session checks the
invoice; the ``successful_payment`` message grants VIP once per charge id; a refund is made by
an operator with ``/refund <user_id> <charge_id>`` (``refundStarPayment``) and recorded, or
recorded when Telegram reports ``refunded_payment``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

import structlog
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery

from yabot.bot import render
from yabot.bot.handle import UpdateNote, UserHandle
from yabot.bot.keyboards import VipPurchase
from yabot.bot.texts import text
from yabot.domain.payments import STARS
from yabot.sessions.messages import (
    CheckStarCheckout,
    OpenInvoice,
    RecordStarRefund,
    SettleStarPayment,
    SubscriptionView,
)

log = structlog.get_logger("yabot.bot")

#: Telegram's answer when the charge was refunded before: the refund stands, record it.
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


async def open_invoice(callback: CallbackQuery, callback_data: VipPurchase, user: UserHandle,
                       note: UpdateNote, bot: Bot) -> None:
    note.details = {"offer": callback_data.offer}
    invoice = await user.ask(OpenInvoice(offer_id=callback_data.offer))
    await callback.answer()
    offer = invoice.offer
    await bot.send_invoice(
        chat_id=user.user_id, title=offer.title[:32], description=offer.description[:255],
        payload=invoice.payload, currency=STARS,
        prices=[LabeledPrice(label=offer.title[:32], amount=offer.stars)],
    )


async def pre_checkout(query: PreCheckoutQuery, user: UserHandle) -> None:
    verdict = await user.ask(CheckStarCheckout(payload=query.invoice_payload[:128],
                                               currency=query.currency[:8],
                                               total=query.total_amount))
    if verdict.reason is None:
        await query.answer(ok=True)
        return
    log.info("pre-checkout declined", reason=verdict.reason)
    await query.answer(ok=False, error_message=text("checkout_declined",
                                                    user.known_language()))


async def paid(message: Message, user: UserHandle, note: UpdateNote) -> None:
    payment = message.successful_payment
    assert payment is not None
    note.details = {"charge_id": payment.telegram_payment_charge_id[:128]}
    result = await user.ask(SettleStarPayment(
        charge_id=payment.telegram_payment_charge_id, payload=payment.invoice_payload[:128],
        currency=payment.currency[:8], total=payment.total_amount))
    if not result.applied:  # Telegram delivered the same payment again: granted once
        log.info("a payment settled before arrived again")
        return
    ends_at = _date(result.subscription)
    await message.answer(text("vip_paid", await user.language(), ends_at=ends_at))


async def refunded(message: Message, user: UserHandle, note: UpdateNote) -> None:
    refund = message.refunded_payment
    assert refund is not None
    note.details = {"charge_id": refund.telegram_payment_charge_id[:128]}
    result = await user.ask(RecordStarRefund(charge_id=refund.telegram_payment_charge_id))
    if result.applied:
        language = await user.language()
        status = render.subscription(result.subscription, language).text
        await message.answer(text("vip_refunded", language, status=status))


def refund_command(operators: Collection[int]) -> Callable[..., Awaitable[None]]:
    async def refund(message: Message, command: CommandObject, user: UserHandle,
                     bot: Bot) -> None:
        language = user.known_language()
        if user.user_id not in operators:
            await message.answer(text("not_understood", language))
            return
        parts = (command.args or "").split()
        if len(parts) != 2 or not parts[0].isdigit():
            await message.answer(text("refund_usage", language))
            return
        payer, charge_id = int(parts[0]), parts[1]
        try:
            await bot.refund_star_payment(user_id=payer, telegram_payment_charge_id=charge_id)
        except TelegramBadRequest as exc:
            if ALREADY_REFUNDED not in exc.message:
                log.info("refund refused by Telegram", detail=exc.message[:200])
                await message.answer(text("refund_failed", language, detail=exc.message))
                return
        log.info("stars refunded by an operator", payer=payer, operator=user.user_id)
        result = await user.other(payer).ask(RecordStarRefund(charge_id=charge_id))
        status = render.subscription(result.subscription, language).text
        await message.answer(text("refund_done", language, charge_id=charge_id,
                                  user_id=payer, status=status))

    return refund


def _date(view: SubscriptionView) -> str:
    return view.ends_at.date().isoformat() if view.ends_at is not None else ""


def router(operators: Collection[int] = ()) -> Router:
    payments = Router(name="payments")
    payments.callback_query.register(open_invoice, VipPurchase.filter(),
                                     flags={"action": "vip_invoice"})
    payments.pre_checkout_query.register(pre_checkout, flags={"action": "vip_checkout"})
    payments.message.register(paid, F.successful_payment, flags={"action": "vip_paid"})
    payments.message.register(refunded, F.refunded_payment, flags={"action": "vip_refunded"})
    payments.message.register(refund_command(frozenset(operators)), Command("refund"),
                              flags={"action": "refund"})
    return payments
