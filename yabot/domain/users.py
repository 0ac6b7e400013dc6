"""The user aggregate as the domain sees it: a document (story state, wallet) and a profile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Language = Literal["es", "en"]
UserId = Annotated[int, Field(gt=0, lt=2**53)]  # Telegram ids fit in 52 bits


def _as_stored(value: datetime) -> datetime:
    """Aware UTC with millisecond precision: what every backend can store and give back
    unchanged (BSON keeps milliseconds; SQLite hands back naive datetimes)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


UtcDatetime = Annotated[datetime, AfterValidator(_as_stored)]


def utcnow() -> datetime:
    return _as_stored(datetime.now(UTC))


class TelegramIdentity(BaseModel):
    """Who a user is on Telegram, as an update tells us."""

    model_config = ConfigDict(frozen=True)

    user_id: UserId
    first_name: str = ""
    username: str | None = None
    language_code: str | None = None

    @property
    def language(self) -> Language:
        return "es" if (self.language_code or "").lower().startswith("es") else "en"


class UserDocument(BaseModel):
    """The document-store half of a user: story position, wallet, inventory, preferences.

    ``current_fragment`` None: the user has not begun the story. ``inventory`` holds each sku
    the user owns once. ``notifications``: whether the bot may message the user unasked.
    """

    model_config = ConfigDict(frozen=True)

    user_id: UserId
    language: Language = "en"
    notifications: bool = True
    # At most `yabot.domain.besitos.MAX_BESITOS` (that module imports this one).
    besitos: Annotated[int, Field(ge=0, le=2**53 - 1)] = 0
    current_fragment: str | None = None
    inventory: tuple[str, ...] = ()
    created_at: UtcDatetime = Field(default_factory=utcnow)


class UserChanges(BaseModel):
    """A partial update of a user document: only the fields given are written."""

    model_config = ConfigDict(frozen=True)

    language: Language | None = None
    notifications: bool | None = None
    current_fragment: str | None = None

    def fields(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True)


class UserProfile(BaseModel):
    """The relational half of a user: identity facts other tables refer to."""

    model_config = ConfigDict(frozen=True)

    user_id: UserId
    first_name: str = ""
    username: str | None = None
    language_code: str | None = None
    created_at: UtcDatetime = Field(default_factory=utcnow)

    @classmethod
    def from_identity(cls, identity: TelegramIdentity) -> UserProfile:
        return cls(
            user_id=identity.user_id, first_name=identity.first_name,
            username=identity.username, language_code=identity.language_code,
        )
