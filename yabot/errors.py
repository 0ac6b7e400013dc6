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


class VipRequired(Forbidden):
    """VIP-only content or item for a user without an active VIP subscription."""

    code = "vip-required"


class ItemRequired(Forbidden):
    """A choice that needs an item the user does not have."""

    code = "item-required"


class FragmentNotFound(NotFound):
    code = "fragment-not-found"


class ItemNotFound(NotFound):
    code = "item-not-found"


class Conflict(YabotError):
    code = "conflict"


class StaleChoice(Conflict):
    """A choice for a fragment the user has already left (an old button)."""

    code = "stale-choice"


class InsufficientBesitos(Conflict):
    code = "insufficient-besitos"


class IdempotencyConflict(Conflict):
    """An idempotency key reused for a different request."""

    code = "idempotency-conflict"


class Unavailable(YabotError):
    """A dependency (store, bus) cannot serve right now; retrying later may work."""

    code = "unavailable"


class StoreUnavailable(Unavailable):
    code = "store-unavailable"


class StoreUnreachable(StoreUnavailable):
    """A store did not answer on start after every attempt; ``store`` names it (``sql``,
    ``mongo``) and ``reason`` is the last error's first line."""

    def __init__(self, store: str, attempts: int, reason: str) -> None:
        super().__init__(f"could not reach the {store} store after {attempts} attempts "
                         f"({reason})")
        self.store = store
        self.reason = reason


class RateLimited(YabotError):
    """Too many requests from one caller; ``retry_after`` says when to try again (seconds)."""

    code = "too-many-requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after} s")
        self.retry_after = retry_after


class PayloadTooLarge(InvalidInput):
    code = "payload-too-large"


class LengthRequired(InvalidInput):
    """A body without ``Content-Length`` (e.g. chunked), which the API does not read."""

    code = "length-required"


class UnsupportedMediaType(InvalidInput):
    code = "unsupported-media-type"


class TimedOut(YabotError):
    """An internal request took longer than its deadline."""

    code = "timeout"


class InvalidChoice(InvalidInput):
    """A choice the fragment does not offer."""

    code = "invalid-choice"


class InvalidStory(InvalidInput):
    """Seed content that does not hold together (e.g. a choice pointing at no fragment)."""

    code = "invalid-story"


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


class BackupUnavailable(YabotError):
    """No backup could be taken before a schema change (no ``pg_dump``, or it failed); the
    change was not made. The message says how to proceed (``--no-backup``)."""

    code = "backup-unavailable"


class SchemaMismatch(YabotError):
    """A store's schema is not the one this code needs (pending migrations, or a database
    migrated by newer code); the message says which revisions and what to run. ``store``
    names the store (``sql``, ``mongo``) when known."""

    code = "schema-mismatch"

    def __init__(self, message: str, *, store: str = "") -> None:
        super().__init__(message)
        self.store = store
