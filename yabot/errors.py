"""The one exception hierarchy of the application.

Each error is mapped once to an HTTP status (`yabot.api.problems`) and once to a user-facing
bot reply (`yabot.bot.texts`). Messages of these errors may be shown to API clients: they never
contain secrets, tokens or stack traces.
"""

from __future__ import annotations


class YabotError(Exception):
    """Base of every error the application raises on purpose."""

    #: Stable machine-readable identifier, used in problem-JSON ``type`` and bot catalogue keys.
    code = "internal"


class ConfigError(YabotError):
    """Settings are missing or invalid; the message names each variable and what is wrong."""

    code = "config"


class InvalidInput(YabotError):
    """A request or message carries a value the domain does not accept."""

    code = "invalid-input"


class NotFound(YabotError):
    code = "not-found"


class UserNotFound(NotFound):
    code = "user-not-found"

    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} does not exist")
        self.user_id = user_id


class Unauthorized(YabotError):
    """No valid credentials."""

    code = "unauthorized"


class Forbidden(YabotError):
    """Valid credentials, but not allowed to do this."""

    code = "forbidden"


class Conflict(YabotError):
    code = "conflict"


class Unavailable(YabotError):
    """A dependency (store, bus) cannot serve right now; retrying later may work."""

    code = "unavailable"


class StoreUnavailable(Unavailable):
    code = "store-unavailable"


class TimedOut(YabotError):
    """An internal request took longer than its deadline."""

    code = "timeout"


class InvalidEvent(InvalidInput):
    """Bytes that are not a known event: bad JSON, an unknown ``type``, or an invalid field."""

    code = "invalid-event"


class InvalidRecord(InvalidInput):
    """A store refused a write (a `$jsonSchema` validator, a CHECK or foreign-key constraint);
    nothing was written. ``field`` names the offending field or constraint."""

    code = "invalid-record"

    def __init__(self, field: str, detail: str = "") -> None:
        super().__init__(f"{field}: {detail}" if detail else f"{field}: rejected by the store")
        self.field = field


class SchemaMismatch(YabotError):
    """A store's schema is not the one this code needs (pending migrations, or a database
    migrated by newer code); the message says which revisions and what to run."""

    code = "schema-mismatch"
