"""Every text the bot sends, in each language it speaks. Handlers never hold literal text."""

from __future__ import annotations

from yabot.domain.users import Language
from yabot.errors import YabotError

CATALOGUE: dict[str, dict[Language, str]] = {
    "welcome_new": {
        "en": "Welcome, {name}! Your story begins now.",
        "es": "¡Bienvenido, {name}! Tu historia comienza ahora.",
    },
    "welcome_back": {
        "en": "Welcome back, {name}!",
        "es": "¡Hola de nuevo, {name}!",
    },
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
}


def text(key: str, language: Language, **values: object) -> str:
    """The catalogue entry ``key`` in ``language``, formatted with ``values``."""
    return CATALOGUE[key][language].format(**values)


def error_text(error: BaseException, language: Language) -> str:
    """The one mapping from errors to what a user is told."""
    if isinstance(error, YabotError):
        key = f"error_{error.code}"
        if key in CATALOGUE:
            return text(key, language)
        if error.code in ("unavailable", "store-unavailable", "timeout"):
            return text("error_unavailable", language)
    return text("error_internal", language)
