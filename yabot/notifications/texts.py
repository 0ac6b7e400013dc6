"""Every notification text, in each language the bot speaks (as `yabot.bot.texts`)."""

from __future__ import annotations

from yabot.domain.users import Language

CATALOGUE: dict[str, dict[Language, str]] = {
    "gift": {
        "en": "🎁 You received a gift: {sku}. Open /shop to see your items.",
        "es": "🎁 Has recibido un regalo: {sku}. Abre /shop para ver tus objetos.",
    },
    "payment": {
        "en": "⭐ Your payment of {stars} Stars went through: your VIP is active.",
        "es": "⭐ Tu pago de {stars} Stars se ha completado: tu VIP está activo.",
    },
    "refund": {
        "en": "↩️ Your {stars} Stars were refunded.",
        "es": "↩️ Se te han devuelto {stars} Stars.",
    },
    "vip_warning": {
        "en": "⏳ Your VIP ends on {ends} (UTC). Open /vip to renew it in time.",
        "es": "⏳ Tu VIP termina el {ends} (UTC). Abre /vip para renovarlo a tiempo.",
    },
    "vip_lapsed": {
        "en": "⌛ Your VIP has ended. Open /vip to renew it.",
        "es": "⌛ Tu VIP ha terminado. Abre /vip para renovarlo.",
    },
}


def notification_text(key: str, language: Language, **values: object) -> str:
    """The text ``key`` in ``language`` (English when the catalogue lacks it)."""
    texts = CATALOGUE[key]
    return texts.get(language, texts["en"]).format(**values)
