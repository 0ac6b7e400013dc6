"""Domain services: plain, stateless classes over the repositories, called inside actors
(a user's `UserSession`, or the `Coordinator`). Each method is one use case; a use case of
several writes compensates what it wrote when a later write fails.

Users import from here::

    from yabot.services import NarrativeService, UserService
"""

from yabot.services.besitos import BesitosService, TransactionOutcome
from yabot.services.narrative import ChoiceOutcome, NarrativeService
from yabot.services.reactions import ReactionOutcome, ReactionService
from yabot.services.shop import PurchaseOutcome, ShopService
from yabot.services.subscriptions import SubscriptionService, subscription_view
from yabot.services.users import UserService

__all__ = [
    "BesitosService",
    "ChoiceOutcome",
    "NarrativeService",
    "PurchaseOutcome",
    "ReactionOutcome",
    "ReactionService",
    "ShopService",
    "SubscriptionService",
    "TransactionOutcome",
    "UserService",
    "subscription_view",
]
