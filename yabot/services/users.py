"""UserService: creating users across both stores and reading their merged state."""

from __future__ import annotations

from dataclasses import replace

import structlog

from yabot.domain.users import TelegramIdentity, UserChanges, UserDocument, UserProfile
from yabot.errors import UserNotFound
from yabot.services.subscriptions import SubscriptionService, subscription_view
from yabot.sessions.messages import Preferences, SubscriptionView, UserState
from yabot.stores.context import UserContext, read_user_context
from yabot.stores.handles import Stores
from yabot.stores.outbox import EventDrafts, no_events

log = structlog.get_logger("yabot.services.users")

__all__ = ["UserService", "state_from_context", "subscription_view"]


class UserService:
    """Plain class, called inside a user's session actor (so one user's calls are serial).

    A user is two records: the document (story, wallet) and the relational profile (which
    subscriptions refer to). `create_user` writes the document, then the profile; both
    writes are idempotent upserts. A crash between them leaves a document without a profile,
    which `ensure_profile` (run on the next access) repairs: both, eventually, or neither.
    """

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._subscriptions = SubscriptionService(stores)

    @property
    def stores(self) -> Stores:
        return self._stores

    def create_user(self, identity: TelegramIdentity) -> bool:
        """Create the user in both stores unless present; True when this call completed the
        creation (the profile, written last, is new)."""
        self._stores.documents.users.create_if_absent(
            UserDocument(user_id=identity.user_id, language=identity.language)
        )
        return self._stores.relational.profiles.create_if_absent(
            UserProfile.from_identity(identity)
        )

    def document(self, user_id: int) -> UserDocument:
        """The user's document; `UserNotFound` when there is none."""
        document = self._stores.documents.users.get(user_id)
        if document is None:
            raise UserNotFound(user_id)
        return document

    def ensure_profile(self, document: UserDocument) -> UserProfile:
        """The user's profile, created from the document when a crash left it missing."""
        profiles = self._stores.relational.profiles
        profile = profiles.get(document.user_id)
        if profile is not None:
            return profile
        repaired = UserProfile(user_id=document.user_id, language_code=document.language,
                               created_at=document.created_at)
        profiles.create_if_absent(repaired)
        log.warning("user profile was missing; repaired", user_id=document.user_id)
        return profiles.get(document.user_id) or repaired

    def read_context(self, user_id: int) -> UserContext:
        """The user's document, profile and latest subscription, read in one go
        (`read_user_context`); `UserNotFound` when the user has no document. A profile missing
        after a crash is repaired here."""
        context = read_user_context(self._stores, user_id)
        if context.document is None:
            raise UserNotFound(user_id)
        if context.profile is None:
            context = replace(context, profile=self.ensure_profile(context.document))
        return context

    def get_user_context(self, user_id: int) -> UserState:
        """The merged state now (`read_context`, then `state_from_context`)."""
        return state_from_context(self.read_context(user_id))

    def state_of(self, document: UserDocument) -> UserState:
        """The merged state around a document just read or written."""
        return _state(document, self.ensure_profile(document),
                      self._subscriptions.check_subscription_status(document.user_id))

    def update_user_state(self, user_id: int, changes: UserChanges, *,
                          events: EventDrafts = no_events) -> UserDocument:
        """Write ``changes`` and their ``events`` to the user's document; `UserNotFound` if
        none."""
        return self._stores.documents.users.update(user_id, changes, events=events)

    def record_events(self, user_id: int, events: EventDrafts) -> UserDocument:
        """Store ``events`` of a change that touched no document; `UserNotFound` if none."""
        return self._stores.documents.users.record_events(user_id, events)

    def set_preferences(self, user_id: int, preferences: Preferences, *,
                        events: EventDrafts = no_events) -> UserState:
        document = self.update_user_state(user_id, UserChanges(
            language=preferences.language, notifications=preferences.notifications,
        ), events=events)
        return self.state_of(document)


def state_from_context(context: UserContext) -> UserState:
    """The merged state of a context that `UserService.read_context` returned; what the
    subscription means (VIP or expired) is decided now, so an older context stays correct."""
    assert context.document is not None
    assert context.profile is not None
    return _state(context.document, context.profile, subscription_view(context.subscription))


def _state(document: UserDocument, profile: UserProfile, subscription: SubscriptionView
           ) -> UserState:
    return UserState(
        document=document, profile=profile,
        preferences=Preferences(language=document.language,
                                notifications=document.notifications),
        subscription=subscription,
    )
