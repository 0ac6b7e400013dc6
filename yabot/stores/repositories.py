"""What the domain needs from storage, one small interface per aggregate.

Every backend implements these exactly; `tests/stores` runs one contract suite against all.
Methods run in the caller's thread: implementations hold only thread-safe pools.
"""

from __future__ import annotations

from typing import Protocol

from yabot.domain.users import UserDocument, UserProfile


class UserDocuments(Protocol):
    """The ``users`` documents."""

    def get(self, user_id: int) -> UserDocument | None:
        """The user's document, or None."""

    def create_if_absent(self, document: UserDocument) -> tuple[UserDocument, bool]:
        """Store ``document`` unless one exists for its user; return the stored one and
        whether this call created it. Idempotent and safe to race."""


class UserProfiles(Protocol):
    """The ``user_profiles`` rows."""

    def get(self, user_id: int) -> UserProfile | None:
        """The user's profile, or None."""

    def create_if_absent(self, profile: UserProfile) -> bool:
        """Insert ``profile`` unless a row exists; True when this call inserted it."""
