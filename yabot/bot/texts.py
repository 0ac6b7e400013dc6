"""Every text the bot sends, in each language it speaks. Handlers never hold literal text.

Story content (fragment titles, texts, choice labels, item names) comes from the session
already in the user's language; this catalogue holds the bot's own words around it.
"""

from __future__ import annotations

from actors import ActorError
from yabot.domain.users import Language
from yabot.errors import YabotError

LANGUAGES: tuple[Language, ...] = ("en", "es")

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
        "en": "What would you like to do? You have {balance} besitos.",
        "es": "¿Qué quieres hacer? Tienes {balance} besitos.",
    },
    "menu_story": {"en": "📖 Story", "es": "📖 Historia"},
    "menu_wallet": {"en": "💰 Wallet", "es": "💰 Cartera"},
    "menu_shop": {"en": "🛍 Shop", "es": "🛍 Tienda"},
    "menu_vip": {"en": "⭐ VIP", "es": "⭐ VIP"},
    "menu_help": {"en": "❓ Help", "es": "❓ Ayuda"},
    "help": {
        "en": (
            "I tell you a story in which you choose what happens.\n"
            "/menu — the main menu\n/story — continue the story\n"
            "/wallet — your besitos\n/shop — spend besitos on items\n"
            "/vip — your subscription\n"
            "React to my messages to earn besitos."
        ),
        "es": (
            "Te cuento una historia en la que tú eliges lo que pasa.\n"
            "/menu — el menú principal\n/story — continuar la historia\n"
            "/wallet — tus besitos\n/shop — gasta besitos en objetos\n"
            "/vip — tu suscripción\n"
            "Reacciona a mis mensajes para ganar besitos."
        ),
    },
    "not_understood": {
        "en": "I didn't understand that. Send /menu to see what I can do.",
        "es": "No te he entendido. Envía /menu para ver lo que puedo hacer.",
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
        "en": "— The end. Send /menu to start something new. —",
        "es": "— Fin. Envía /menu para empezar algo nuevo. —",
    },
    "choice_cost": {"en": "{label} (-{cost} 💋)", "es": "{label} (-{cost} 💋)"},
    "choice_locked": {"en": "🔒 {label}", "es": "🔒 {label}"},
    "stale_choice": {
        "en": "That choice belongs to an earlier part of the story.",
        "es": "Esa opción es de una parte anterior de la historia.",
    },
    "vip_gate": {
        "en": "⭐ This part of the story is for VIP members. Send /vip to learn more.",
        "es": "⭐ Esta parte de la historia es para miembros VIP. Envía /vip para saber más.",
    },
    # -- wallet -------------------------------------------------------------------------------
    "wallet": {
        "en": "💰 Balance: {balance} besitos",
        "es": "💰 Saldo: {balance} besitos",
    },
    "wallet_recent": {"en": "Recent movements:", "es": "Últimos movimientos:"},
    "wallet_empty": {"en": "No movements yet.", "es": "Aún no hay movimientos."},
    "wallet_entry": {
        "en": "{sign}{amount} → {balance_after}  {reason}",
        "es": "{sign}{amount} → {balance_after}  {reason}",
    },
    # -- shop ---------------------------------------------------------------------------------
    "shop": {
        "en": "🛍 Shop — you have {balance} besitos.",
        "es": "🛍 Tienda — tienes {balance} besitos.",
    },
    "shop_empty": {"en": "The shop is empty today.", "es": "La tienda está vacía hoy."},
    "shop_item": {
        "en": "{name} — {price} 💋{vip}{owned}\n{description}",
        "es": "{name} — {price} 💋{vip}{owned}\n{description}",
    },
    "shop_item_vip": {"en": " ⭐VIP", "es": " ⭐VIP"},
    "shop_item_owned": {"en": " ✓ yours", "es": " ✓ tuyo"},
    "shop_buy": {"en": "Buy {name} ({price} 💋)", "es": "Comprar {name} ({price} 💋)"},
    "purchased": {
        "en": "You bought {name}. Balance: {balance} besitos.",
        "es": "Has comprado {name}. Saldo: {balance} besitos.",
    },
    "purchase_repeated": {
        "en": "You already bought {name} with that button. Balance: {balance} besitos.",
        "es": "Ya compraste {name} con ese botón. Saldo: {balance} besitos.",
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
    # -- reactions ----------------------------------------------------------------------------
    "reaction_reward": {
        "en": "Thanks for reacting! +{awarded} besitos (balance {balance}).",
        "es": "¡Gracias por reaccionar! +{awarded} besitos (saldo {balance}).",
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
    "error_balance-limit": {
        "en": "Your wallet is full: it cannot hold more besitos.",
        "es": "Tu cartera está llena: no caben más besitos.",
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

_UNAVAILABLE_CODES = ("unavailable", "store-unavailable", "timeout")


def text(key: str, language: Language, **values: object) -> str:
    """The catalogue entry ``key`` in ``language``, formatted with ``values``."""
    return CATALOGUE[key][language].format(**values)


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
