"""Every text the bot sends, in each language it speaks. Handlers never hold literal text.

Story content (fragment titles, texts, choice labels, item names) comes from the session
already in the user's language; this catalogue holds the bot's own words around it.
"""

from __future__ import annotations

from actors import ActorError
from yabot.domain.users import Language
from yabot.errors import YabotError

CATALOGUE: dict[str, dict[Language, str]] = {
    # -- greeting, menu, help ----------------------------------------------------------------
    "welcome_new": {
        "en": "Welcome, {name}! Your story begins now.",
        "es": "¡Bienvenido, {name}! Tu historia comienza ahora.",
    },
    "welcome_back": {
        "en": "Welcome back, {name}!",
        "es": "¡Hola de nuevo, {name}!",
    },
    "menu": {
        "en": "What would you like to do? You have {besitos}.",
        "es": "¿Qué quieres hacer? Tienes {besitos}.",
    },
    "menu_story": {"en": "📖 Story", "es": "📖 Historia"},
    "menu_wallet": {"en": "💰 Wallet", "es": "💰 Cartera"},
    "menu_shop": {"en": "🛍 Shop", "es": "🛍 Tienda"},
    "menu_vip": {"en": "⭐ VIP", "es": "⭐ VIP"},
    "menu_help": {"en": "❓ Help", "es": "❓ Ayuda"},
    "menu_settings": {"en": "⚙️ Settings", "es": "⚙️ Ajustes"},
    "help": {
        "en": (
            "I tell you a story in which you choose what happens.\n"
            "/menu — the main menu\n/story — continue the story\n"
            "/wallet — your besitos\n/shop — spend besitos on items\n"
            "/vip — your subscription\n/settings — language and notifications\n"
            "React to my messages to earn besitos."
        ),
        "es": (
            "Te cuento una historia en la que tú eliges lo que pasa.\n"
            "/menu — el menú principal\n/story — continuar la historia\n"
            "/wallet — tus besitos\n/shop — gasta besitos en objetos\n"
            "/vip — tu suscripción\n/settings — idioma y avisos\n"
            "Reacciona a mis mensajes para ganar besitos."
        ),
    },
    "not_understood": {
        "en": "I didn't understand that. Send /menu to see what I can do.",
        "es": "No te he entendido. Envía /menu para ver lo que puedo hacer.",
    },
    "button_expired": {
        "en": "That button no longer works. Send /menu for a fresh one.",
        "es": "Ese botón ya no funciona. Envía /menu para tener uno nuevo.",
    },
    "private_only": {
        "en": "I tell my stories in private: open @{bot} and send /start.",
        "es": "Cuento mis historias en privado: abre @{bot} y envía /start.",
    },
    # -- story --------------------------------------------------------------------------------
    "fragment": {
        "en": "{title}\n\n{text}\n\n💋 {balance}",
        "es": "{title}\n\n{text}\n\n💋 {balance}",
    },
    "fragment_untitled": {
        "en": "{text}\n\n💋 {balance}",
        "es": "{text}\n\n💋 {balance}",
    },
    "ending": {
        "en": "— The end. You keep your besitos and items if you start again. —",
        "es": "— Fin. Conservas tus besitos y objetos si empiezas de nuevo. —",
    },
    "choice_cost": {"en": "{label} (-{cost} 💋)", "es": "{label} (-{cost} 💋)"},
    "choice_locked": {"en": "🔒 {label}", "es": "🔒 {label}"},
    "restart": {"en": "🔁 Start again", "es": "🔁 Empezar de nuevo"},
    "stale_choice": {
        "en": "That choice belongs to an earlier part of the story.",
        "es": "Esa opción es de una parte anterior de la historia.",
    },
    "vip_gate": {
        "en": "⭐ This part of the story is for VIP members. Send /vip to learn more.",
        "es": "⭐ Esta parte de la historia es para miembros VIP. Envía /vip para saber más.",
    },
    # -- settings ---------------------------------------------------------------------------
    "settings": {
        "en": "⚙️ Settings\nLanguage: {lang}\nNotifications: {notifications}",
        "es": "⚙️ Ajustes\nIdioma: {lang}\nAvisos: {notifications}",
    },
    "settings_on": {"en": "on", "es": "activados"},
    "settings_off": {"en": "off", "es": "desactivados"},
    "settings_notify_on": {"en": "🔔 Notifications on", "es": "🔔 Activar avisos"},
    "settings_notify_off": {"en": "🔕 Notifications off", "es": "🔕 Desactivar avisos"},
    "language_en": {"en": "English", "es": "English"},
    "language_es": {"en": "Español", "es": "Español"},
    "chosen": {"en": "✓ {label}", "es": "✓ {label}"},
    # -- wallet -------------------------------------------------------------------------------
    "wallet": {
        "en": "💰 Balance: {besitos}",
        "es": "💰 Saldo: {besitos}",
    },
    "wallet_recent": {"en": "Recent movements:", "es": "Últimos movimientos:"},
    "wallet_empty": {"en": "No movements yet.", "es": "Aún no hay movimientos."},
    "wallet_entry": {
        "en": "{sign}{amount} → {balance_after}  {reason}",
        "es": "{sign}{amount} → {balance_after}  {reason}",
    },
    # -- shop ---------------------------------------------------------------------------------
    "shop": {
        "en": "🛍 Shop — you have {besitos}.",
        "es": "🛍 Tienda — tienes {besitos}.",
    },
    "shop_empty": {"en": "The shop is empty today.", "es": "La tienda está vacía hoy."},
    "shop_item": {
        "en": "{name} — {price} 💋{vip}{owned}\n{description}",
        "es": "{name} — {price} 💋{vip}{owned}\n{description}",
    },
    "shop_item_vip": {"en": " ⭐VIP", "es": " ⭐VIP"},
    "shop_item_owned": {"en": " ✓ yours", "es": " ✓ tuyo"},
    "shop_buy": {"en": "Buy {name}", "es": "Comprar {name}"},  # the price is in the list
    "purchased": {
        "en": "You bought {name}. Balance: {besitos}.",
        "es": "Has comprado {name}. Saldo: {besitos}.",
    },
    "purchase_repeated": {
        "en": "You already bought {name} with that button. Balance: {besitos}.",
        "es": "Ya compraste {name} con ese botón. Saldo: {besitos}.",
    },
    # -- VIP ----------------------------------------------------------------------------------
    "vip_active": {
        "en": "⭐ You are VIP until {ends_at}.",
        "es": "⭐ Eres VIP hasta el {ends_at}.",
    },
    "vip_none": {
        "en": "You are on the free plan. VIP opens every part of the story.",
        "es": "Estás en el plan gratuito. VIP abre todas las partes de la historia.",
    },
    "vip_expired": {
        "en": "Your VIP subscription ended on {ends_at}.",
        "es": "Tu suscripción VIP terminó el {ends_at}.",
    },
    "vip_offer": {"en": "⭐ {title} — {stars} Stars", "es": "⭐ {title} — {stars} Stars"},
    "vip_offers": {
        "en": "Become VIP with Telegram Stars:",
        "es": "Hazte VIP con Telegram Stars:",
    },
    "vip_paid": {
        "en": "⭐ Thank you! You are VIP until {ends_at}.",
        "es": "⭐ ¡Gracias! Eres VIP hasta el {ends_at}.",
    },
    "vip_refunded": {
        "en": "Your Stars payment was refunded. {status}",
        "es": "Tu pago con Stars fue reembolsado. {status}",
    },
    "checkout_declined": {
        "en": "This invoice is no longer valid. Send /vip for a new one.",
        "es": "Esta factura ya no es válida. Envía /vip para una nueva.",
    },
    "refund_usage": {
        "en": "Usage: /refund <user_id> <telegram_payment_charge_id>",
        "es": "Uso: /refund <user_id> <telegram_payment_charge_id>",
    },
    "refund_done": {
        "en": "Refunded {charge_id} of user {user_id}. {status}",
        "es": "Reembolsado {charge_id} del usuario {user_id}. {status}",
    },
    "refund_failed": {
        "en": "Telegram refused the refund: {detail}",
        "es": "Telegram rechazó el reembolso: {detail}",
    },
    # -- reactions ----------------------------------------------------------------------------
    "reaction_reward": {
        "en": "Thanks for reacting! +{awarded} (balance {balance}).",
        "es": "¡Gracias por reaccionar! +{awarded} (saldo {balance}).",
    },
    # -- errors (keys: "error_" + YabotError.code) --------------------------------------------
    "error_internal": {
        "en": "Something went wrong on our side. Please try again in a moment.",
        "es": "Algo salió mal de nuestro lado. Inténtalo de nuevo en un momento.",
    },
    "error_unavailable": {
        "en": "I can't reach my memory right now. Please try again shortly.",
        "es": "Ahora mismo no puedo acceder a mi memoria. Inténtalo de nuevo en breve.",
    },
    "error_user-not-found": {
        "en": "I don't know you yet: send /start first.",
        "es": "Aún no te conozco: envía /start primero.",
    },
    "error_stale-choice": {
        "en": "That choice belongs to an earlier part of the story.",
        "es": "Esa opción es de una parte anterior de la historia.",
    },
    "error_invalid-choice": {
        "en": "That choice doesn't exist here.",
        "es": "Esa opción no existe aquí.",
    },
    "error_vip-required": {
        "en": "⭐ That is for VIP members. Send /vip to learn more.",
        "es": "⭐ Eso es para miembros VIP. Envía /vip para saber más.",
    },
    "error_item-required": {
        "en": "You need an item for that. Have a look in the /shop.",
        "es": "Necesitas un objeto para eso. Echa un vistazo a la /shop.",
    },
    "error_insufficient-besitos": {
        "en": "You don't have enough besitos for that.",
        "es": "No tienes suficientes besitos para eso.",
    },
    "error_item-not-found": {
        "en": "That item is no longer in the shop.",
        "es": "Ese objeto ya no está en la tienda.",
    },
    "error_fragment-not-found": {
        "en": "That part of the story is missing. Send /menu to go on.",
        "es": "Falta esa parte de la historia. Envía /menu para seguir.",
    },
    "error_idempotency-conflict": {
        "en": "That button was already used for something else.",
        "es": "Ese botón ya se usó para otra cosa.",
    },
    "error_too-many-requests": {
        "en": "Slow down a little, please, and try again.",
        "es": "Ve un poco más despacio, por favor, e inténtalo de nuevo.",
    },
}

#: Ledger reasons (as the services record them) in the user's words; text after a colon
#: (an API caller's own note) is shown as it is.
REASONS: dict[str, dict[Language, str]] = {
    "choice": {"en": "story choice", "es": "elección en la historia"},
    "story reward": {"en": "story reward", "es": "premio de la historia"},
    "reaction": {"en": "reaction", "es": "reacción"},
    "purchase": {"en": "purchase", "es": "compra"},
    "gift": {"en": "gift", "es": "regalo"},
    "earn": {"en": "earned", "es": "ganados"},
    "spend": {"en": "spent", "es": "gastados"},
    "transfer": {"en": "transfer", "es": "transferencia"},
}

_UNAVAILABLE_CODES = ("unavailable", "store-unavailable", "timeout")


def text(key: str, language: Language, **values: object) -> str:
    """The catalogue entry ``key`` in ``language``, formatted with ``values``."""
    return CATALOGUE[key][language].format(**values)


def besitos(count: int, language: Language) -> str:
    """``count`` with the word in its plural form: "1 besito", "0 besitos", "2 besitos"
    (English and Spanish both use the singular for exactly one)."""
    return f"{count} besito" if abs(count) == 1 else f"{count} besitos"


def reason(recorded: str, language: Language) -> str:
    """A ledger entry's reason in ``language`` (`REASONS`); unknown reasons as recorded."""
    head, sep, note = recorded.partition(":")
    known = REASONS.get(head.strip())
    if known is None:
        return recorded
    return known[language] + (f":{note}" if sep else "")


def error_key(error: BaseException) -> str:
    """The catalogue key for what a user is told about ``error``."""
    if isinstance(error, YabotError):
        key = f"error_{error.code}"
        if key in CATALOGUE:
            return key
        if error.code in _UNAVAILABLE_CODES:
            return "error_unavailable"
    if isinstance(error, ActorError):  # an ask timed out, a session is down
        return "error_unavailable"
    return "error_internal"


def error_text(error: BaseException, language: Language) -> str:
    """The one mapping from errors to what a user is told."""
    return text(error_key(error), language)
