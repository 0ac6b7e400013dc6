"""ReactionService: reactions to the bot's messages earn besitos, up to a daily cap."""

from __future__ import annotations

from dataclasses import dataclass

from yabot.domain.besitos import day_start, reaction_award, system_key
from yabot.domain.users import utcnow
from yabot.errors import UserNotFound
from yabot.events import drafts as draft
from yabot.events.drafts import Drafts
from yabot.events.models import ReactionDetected
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

    def __init__(self, stores: Stores, reward: int, daily_cap: int,
                 drafts: Drafts | None = None) -> None:
        self._stores = stores
        self._reward = reward
        self._daily_cap = daily_cap
        self._drafts = drafts or Drafts()

    def react(self, user_id: int, chat_id: int, message_id: int,
              reaction: str = "") -> ReactionOutcome:
        """Record the reaction (its `ReactionDetected` event) and pay for it if due, in one
        write."""
        documents = self._stores.documents
        document = documents.users.get(user_id)
        if document is None:
            raise UserNotFound(user_id)
        detected = draft.event(ReactionDetected, user_id, chat_id=chat_id,
                               message_id=message_id, reaction=reaction or "?")
        key = system_key(user_id, f"{REACTION}:{chat_id}:{message_id}")
        earned = documents.ledger.earned_since(user_id, REACTION, day_start(utcnow()))
        award = reaction_award(self._reward, self._daily_cap, earned)
        if award:
            change = documents.ledger.credit(
                user_id, award, key, REACTION,
                events=self._drafts.of(detected, draft.besitos(user_id, award, key, REACTION)),
            )
            if change.applied:
                return ReactionOutcome(award, change.balance, key)
        after = documents.users.record_events(user_id, self._drafts.of(detected))
        return ReactionOutcome(0, after.besitos, key)
