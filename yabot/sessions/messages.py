"""The `UserSession` protocol: what edges (HTTP, Telegram) can ask a user's session."""

from __future__ import annotations

from actors import Ask, Message
from yabot.domain.users import TelegramIdentity, UserDocument, UserProfile


class UserState(Message):
    """Everything known about a user: the document and the relational profile."""

    document: UserDocument
    profile: UserProfile | None


class Welcome(Message):
    """Reply to `Start`."""

    state: UserState
    created: bool


class Start(Ask[Welcome]):
    """The user pressed /start: create them if new."""

    identity: TelegramIdentity


class GetState(Ask[UserState]):
    """Read the user's merged state; fails with `UserNotFound` for an unknown user."""
