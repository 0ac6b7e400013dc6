"""The user aggregate as the domain sees it: a document (story state, wallet) and a profile."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

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


#: Text a person typed: any character but the C0/C1 controls (NUL included) and DEL.
PLAIN_TEXT = r"^[^\u0000-\u001f\u007f-\u009f]*$"
#: What a profile's fields may hold (the ``user_profiles`` columns' lengths; Telegram's own
#: limits are lower). `PUT /user/{id}` refuses anything else (`yabot.api.schemas`); what a
#: Telegram update carries is cleaned to fit instead (`TelegramIdentity`), since a person
#: cannot be refused for their name, and PostgreSQL refuses a NUL or a longer value.
MAX_FIRST_NAME = 256
FirstName = Annotated[str, Field(max_length=MAX_FIRST_NAME, pattern=PLAIN_TEXT)]
TelegramUsername = Annotated[str, Field(min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9_]+$")]
LanguageTag = Annotated[str, Field(min_length=2, max_length=16,
                                   pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]
_CONTROLS = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\udfff]")
_USERNAME: TypeAdapter[str] = TypeAdapter(TelegramUsername)
_LANGUAGE_TAG: TypeAdapter[str] = TypeAdapter(LanguageTag)


def clean_first_name(value: str) -> str:
    """``value`` without control characters or lone surrogates (which no store encodes), cut
    to `MAX_FIRST_NAME` characters."""
    return _CONTROLS.sub("", value)[:MAX_FIRST_NAME]


def _valid_or_none(adapter: TypeAdapter[str]) -> Callable[[str | None], str | None]:
    """A value the field's type accepts as it is, or None: a username or a language tag
    cleaned into another one would name something else."""
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return adapter.validate_python(value)
        except ValidationError:
            return None
    return check


class TelegramIdentity(BaseModel):
    """Who a user is on Telegram, as an update tells us, made to fit the profile: the first
    name cleaned (`clean_first_name`), a username or language tag of the wrong shape
    dropped. `PUT /user/{id}` refuses such values (400) before they get here."""

    model_config = ConfigDict(frozen=True)

    user_id: UserId
    first_name: Annotated[str, AfterValidator(clean_first_name)] = ""
    username: Annotated[str | None, AfterValidator(_valid_or_none(_USERNAME))] = None
    language_code: Annotated[str | None, AfterValidator(_valid_or_none(_LANGUAGE_TAG))] = None

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
    first_name: Annotated[str, AfterValidator(clean_first_name)] = ""
    username: Annotated[str | None, AfterValidator(_valid_or_none(_USERNAME))] = None
    language_code: Annotated[str | None, AfterValidator(_valid_or_none(_LANGUAGE_TAG))] = None
    created_at: UtcDatetime = Field(default_factory=utcnow)

    @classmethod
    def from_identity(cls, identity: TelegramIdentity) -> UserProfile:
        return cls(
            user_id=identity.user_id, first_name=identity.first_name,
            username=identity.username, language_code=identity.language_code,
        )
