"""UserService: creating users across both stores and reading their merged state."""

from __future__ import annotations

from yabot.domain.subscriptions import Plan, Subscription, SubscriptionStatus
from yabot.domain.users import TelegramIdentity, UserDocument, UserProfile, utcnow
from yabot.errors import UserNotFound
from yabot.sessions.messages import Preferences, SubscriptionView, UserState
from yabot.stores.context import read_user_context
from yabot.stores.handles import Stores


class UserService:
    """Plain class, called inside a user's session actor (so one user's calls are serial)."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    def create_user(self, identity: TelegramIdentity) -> bool:
        """Create the user in both stores unless present; True when the document is new.

        Both writes are idempotent, so a crash between them is repaired by calling again.
        """
        _, created = self._stores.documents.users.create_if_absent(
            UserDocument(user_id=identity.user_id, language=identity.language)
        )
        self._stores.relational.profiles.create_if_absent(UserProfile.from_identity(identity))
        return created

    def get_user_context(self, user_id: int) -> UserState:
        """The merged state; `UserNotFound` when the user has no document."""
        context = read_user_context(self._stores, user_id)
        if context.document is None:
            raise UserNotFound(user_id)
        return UserState(
            document=context.document, profile=context.profile,
            preferences=Preferences(language=context.document.language),
            subscription=subscription_view(context.subscription),
        )


def subscription_view(subscription: Subscription | None) -> SubscriptionView:
    """What ``subscription`` means now: a lapsed VIP reads as expired, not VIP."""
    if subscription is None:
        return SubscriptionView(plan=Plan.FREE)
    now = utcnow()
    status = subscription.status
    if status is SubscriptionStatus.ACTIVE and subscription.ends_at <= now:
        status = SubscriptionStatus.EXPIRED
    return SubscriptionView(
        plan=subscription.plan, status=status, starts_at=subscription.starts_at,
        ends_at=subscription.ends_at,
        vip=subscription.plan is Plan.VIP and subscription.is_active_at(now),
    )
