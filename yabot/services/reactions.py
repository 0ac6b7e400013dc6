"""ReactionService: reactions to the bot's messages earn besitos, up to a daily cap."""

from __future__ import annotations

from dataclasses import dataclass

from yabot.domain.besitos import day_start, reaction_award, system_key
from yabot.domain.users import utcnow
from yabot.errors import BalanceLimit, UserNotFound
from yabot.stores.handles import Stores

REACTION = "reaction"


@dataclass(frozen=True)
class ReactionOutcome:
    awarded: int
    balance: int
    ledger_key: str


class ReactionService:
    """Each (chat, message) pays once per user (the ledger key names it); what reactions
    earned since the start of the UTC day counts against ``daily_cap``."""

    def __init__(self, stores: Stores, reward: int, daily_cap: int) -> None:
        self._stores = stores
        self._reward = reward
        self._daily_cap = daily_cap

    def react(self, user_id: int, chat_id: int, message_id: int) -> ReactionOutcome:
        documents = self._stores.documents
        document = documents.users.get(user_id)
        if document is None:
            raise UserNotFound(user_id)
        key = system_key(user_id, f"{REACTION}:{chat_id}:{message_id}")
        earned = documents.ledger.earned_since(user_id, REACTION, day_start(utcnow()))
        award = reaction_award(self._reward, self._daily_cap, earned)
        if award == 0:
            return ReactionOutcome(0, document.besitos, key)
        try:
            change = documents.ledger.credit(user_id, award, key, REACTION)
        except BalanceLimit:  # a full wallet earns nothing more; the reaction still counts
            return ReactionOutcome(0, document.besitos, key)
        return ReactionOutcome(award if change.applied else 0, change.balance, key)
