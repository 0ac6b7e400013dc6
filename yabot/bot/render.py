"""Session replies → Telegram messages (text + inline keyboard). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import InlineKeyboardMarkup

from yabot.bot.keyboards import (
    SettingsChange,
    ShopPurchase,
    StoryChoice,
    StoryRestart,
    VipPurchase,
    main_menu,
    markup,
)
from yabot.bot.texts import besitos, reason, text
from yabot.domain.users import Language
from yabot.sessions.messages import (
    ChoiceView,
    FragmentView,
    Purchase,
    ReactionReward,
    Shop,
    SubscriptionView,
    UserState,
    VipOffers,
    Wallet,
)


@dataclass(frozen=True)
class Reply:
    """What the bot sends: a text and, maybe, buttons."""

    text: str
    keyboard: InlineKeyboardMarkup | None = None


def menu(state: UserState, language: Language) -> Reply:
    return Reply(text("menu", language, besitos=besitos(state.document.besitos, language)),
                 main_menu(language))


def choice_label(choice: ChoiceView, language: Language) -> str:
    label = choice.label
    if choice.cost_besitos:
        label = text("choice_cost", language, label=label, cost=choice.cost_besitos)
    if not choice.available:
        label = text("choice_locked", language, label=label)
    return label


def fragment(view: FragmentView, language: Language) -> Reply:
    key = "fragment" if view.title else "fragment_untitled"
    body = text(key, language, title=view.title, text=view.text, balance=view.balance)
    if view.ending or not view.choices:  # offer to begin again: the story never dead-ends
        return Reply(f"{body}\n\n{text('ending', language)}", markup(
            [[(text("restart", language), StoryRestart(fragment=view.fragment_id))]]))
    # Unavailable choices stay visible (locked): pressing one explains why (VIP gate …).
    rows = [[(choice_label(choice, language),
              StoryChoice(fragment=view.fragment_id, choice=choice.choice_id))]
            for choice in view.choices]
    return Reply(body, markup(rows))


def wallet(view: Wallet, language: Language) -> Reply:
    lines = [text("wallet", language, besitos=besitos(view.balance, language))]
    if view.entries:
        lines.append(text("wallet_recent", language))
        lines += [
            text("wallet_entry", language, sign="+" if entry.amount >= 0 else "-",
                 amount=abs(entry.amount), balance_after=entry.balance_after,
                 reason=reason(entry.reason, language))
            for entry in view.entries
        ]
    else:
        lines.append(text("wallet_empty", language))
    return Reply("\n".join(lines).rstrip())


def shop(view: Shop, language: Language) -> Reply:
    if not view.items:
        return Reply(text("shop", language, besitos=besitos(view.balance, language)) + "\n"
                     + text("shop_empty", language))
    owned = set(view.inventory)
    lines = [text("shop", language, besitos=besitos(view.balance, language))]
    rows = []
    for item in view.items:
        lines.append(text(
            "shop_item", language, name=item.name, price=item.price_besitos,
            vip=text("shop_item_vip", language) if item.vip_only else "",
            owned=text("shop_item_owned", language) if item.sku in owned else "",
            description=item.description,
        ).rstrip())
        rows.append([(text("shop_buy", language, name=item.name),
                      ShopPurchase(sku=item.sku))])
    return Reply("\n\n".join(lines), markup(rows))


def purchase(view: Purchase, language: Language) -> Reply:
    key = "purchased" if view.applied else "purchase_repeated"
    return Reply(text(key, language, name=view.item.name,
                      besitos=besitos(view.balance, language)))


def subscription(view: SubscriptionView, language: Language) -> Reply:
    ends_at = view.ends_at.date().isoformat() if view.ends_at is not None else ""
    if view.vip:
        return Reply(text("vip_active", language, ends_at=ends_at))
    if view.status is not None and view.status.value == "expired" and ends_at:
        return Reply(text("vip_expired", language, ends_at=ends_at))
    return Reply(text("vip_none", language))


def vip(view: VipOffers, language: Language) -> Reply:
    """The user's plan, and a button per Stars offer (each opens an invoice)."""
    status = subscription(view.subscription, language)
    if not view.offers:
        return status
    rows = [[(text("vip_offer", language, title=offer.title, stars=offer.stars),
              VipPurchase(offer=offer.offer_id))] for offer in view.offers]
    return Reply(f"{status.text}\n\n{text('vip_offers', language)}", markup(rows))


def reaction_reward(view: ReactionReward, language: Language) -> Reply | None:
    """Nothing to say when nothing was awarded (daily cap, or a second reaction)."""
    if view.awarded <= 0:
        return None
    return Reply(text("reaction_reward", language, awarded=besitos(view.awarded, language),
                      balance=view.balance))


def settings(state: UserState, language: Language) -> Reply:
    """The /settings screen: the current choices, a button for each other one."""
    preferences = state.preferences

    def label(key: str, chosen: bool) -> str:
        return text("chosen", language, label=text(key, language)) if chosen else text(
            key, language)

    body = text("settings", language, lang=text(f"language_{preferences.language}",
                                                     language),
                notifications=text("settings_on" if preferences.notifications
                                   else "settings_off", language))
    return Reply(body, markup([
        [(label("language_en", preferences.language == "en"),
          SettingsChange(language="en")),
         (label("language_es", preferences.language == "es"),
          SettingsChange(language="es"))],
        [(label("settings_notify_on", preferences.notifications),
          SettingsChange(notifications="on")),
         (label("settings_notify_off", not preferences.notifications),
          SettingsChange(notifications="off"))],
    ]))
