"""NarrativeService: fragments, choices and the VIP gate, for one reader at a time."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from yabot.crashpoints import crash_point
from yabot.domain.besitos import BalanceChange, system_key
from yabot.domain.choices import Reader, ensure_may_read, select_choice, why_not
from yabot.domain.narrative import Choice, Fragment
from yabot.domain.users import UserChanges, UserDocument
from yabot.errors import BalanceLimit, FragmentNotFound, InsufficientBesitos, StaleChoice
from yabot.events import drafts as draft
from yabot.events.drafts import Drafts, current_update
from yabot.events.models import FragmentReached
from yabot.services.besitos import BesitosService
from yabot.stores.handles import Stores
from yabot.views import ChoiceView, FragmentView

log = structlog.get_logger("yabot.services.narrative")

#: Ledger reasons of the story's besitos (events carry them too).
CHOICE_COST = "choice"
CHOICE_REWARD = "story reward"


@dataclass(frozen=True)
class ChoiceOutcome:
    """What taking a choice did: where the reader is now and what it cost or paid."""

    choice: Choice
    fragment: Fragment
    document: UserDocument
    balance: int
    cost: BalanceChange | None = None
    cost_key: str | None = None
    reward: BalanceChange | None = None
    reward_key: str | None = None


class NarrativeService:
    """Plain class over the fragment, user and ledger repositories; holds no state.

    Taking a choice spans two writes: the cost (a debit) and the move (the user's current
    fragment). When the move fails after the debit, the debit is compensated (refunded and
    marked) before the error goes back. A reward is paid once per user and choice (its ledger
    key names both), so walking a loop of the story never farms besitos.

    A choice taken for a Telegram update (`yabot.events.drafts.handling_update`) pays under a
    key named after the update, and the payment does not mark the update handled: the move
    does. So when a crash comes between the two, the redelivered update finds its payment,
    does not pay again, and moves (once in effect, not "paid and never moved").
    """

    def __init__(self, stores: Stores, start_fragment: str = "start",
                 drafts: Drafts | None = None) -> None:
        self._stores = stores
        self.start_fragment = start_fragment
        self._drafts = drafts or Drafts()
        self._besitos = BesitosService(stores, self._drafts)

    def get_fragment(self, fragment_id: str) -> Fragment:
        fragment = self._stores.documents.fragments.get(fragment_id)
        if fragment is None:
            raise FragmentNotFound(f"no fragment {fragment_id!r}")
        return fragment

    def current_of(self, document: UserDocument) -> str:
        return document.current_fragment or self.start_fragment

    def validate_vip_access(self, fragment: Fragment, vip: bool) -> Fragment:
        """``fragment`` if a reader with (``vip``) or without VIP may read it; `VipRequired`."""
        ensure_may_read(fragment, vip)
        return fragment

    def begin(self, document: UserDocument) -> UserDocument:
        """Place a reader who has not begun at the story's start."""
        self.get_fragment(self.start_fragment)
        return self._stores.documents.users.update(
            document.user_id, UserChanges(current_fragment=self.start_fragment),
            events=self._drafts.of(draft.event(FragmentReached, document.user_id,
                                               fragment_id=self.start_fragment,
                                               choice_id=None)),
        )

    def _cost_key(self, user_id: int, request: str) -> tuple[str, bool]:
        """The ledger key a choice's cost is paid under, and whether it was paid under it
        already (for this same choice). Named after the update being handled, if any, so a
        redelivery finds the payment; otherwise (the API, or a payment refunded after a
        failed move) a fresh one."""
        handling = current_update()
        if handling is not None and handling.user_id == user_id:
            key = system_key(user_id, f"choice:update:{handling.update_id}")
            entry = self._stores.documents.ledger.get(key)
            if entry is None:
                return key, False
            if entry.request == request and not entry.compensated:
                return key, True
        return system_key(user_id, f"choice:{uuid.uuid4().hex}"), False

    @staticmethod
    def needs_vip(fragment: Fragment) -> bool:
        """Whether showing ``fragment`` asks whether the reader is VIP."""
        return fragment.vip_only or any(choice.requires_vip for choice in fragment.choices)

    def process_choice(self, document: UserDocument, fragment_id: str, choice_id: str,
                       is_vip: Callable[[], bool]) -> ChoiceOutcome:
        """Take ``choice_id`` of ``fragment_id`` for the reader ``document``; ``is_vip`` is
        called only when the choice or its target needs VIP.

        Raises `StaleChoice`, `InvalidChoice`, `VipRequired`, `ItemRequired`,
        `InsufficientBesitos` (`yabot.domain.choices`), `FragmentNotFound`.
        """
        current = self.current_of(document)
        if fragment_id != current:
            raise StaleChoice(f"you are no longer at {fragment_id}")
        fragment = self.get_fragment(fragment_id)
        offered = fragment.choice(choice_id)
        target = self.get_fragment(offered.next_fragment) if offered is not None else None
        needs_vip = offered is not None and (offered.requires_vip
                                             or (target is not None and target.vip_only))
        vip = is_vip() if needs_vip else False
        user_id = document.user_id
        request = f"choice:{fragment_id}:{choice_id}"[:64]
        cost_key: str | None = None
        paid = False
        if offered is not None and offered.cost_besitos:
            cost_key, paid = self._cost_key(user_id, request)
        # Paid already (by this update, before a crash): that balance is what the reader had.
        refund = offered.cost_besitos if paid and offered is not None else 0
        reader = Reader(document.besitos + refund, frozenset(document.inventory), vip)
        choice = select_choice(fragment, current, choice_id, reader)
        assert target is not None  # select_choice found the choice
        self.validate_vip_access(target, vip)
        ledger = self._stores.documents.ledger
        cost: BalanceChange | None = None
        if cost_key is not None and paid:
            log.info("choice paid for before a crash; not paid again", user_id=user_id)
            cost = BalanceChange(applied=False, balance=document.besitos)
        elif cost_key is not None:
            cost = ledger.debit(
                user_id, choice.cost_besitos, cost_key, CHOICE_COST, request,
                events=self._drafts.of(draft.besitos(user_id, -choice.cost_besitos, cost_key,
                                                     CHOICE_COST), completes_update=False),
            )
            if not cost.applied:
                raise InsufficientBesitos(
                    f"choice {choice_id} costs {choice.cost_besitos} besitos, "
                    f"{cost.balance} available"
                )
            crash_point("choice-paid")
        try:
            moved = self._stores.documents.users.update(
                user_id, UserChanges(current_fragment=target.fragment_id),
                events=self._drafts.of(draft.event(FragmentReached, user_id,
                                                   fragment_id=target.fragment_id,
                                                   choice_id=choice_id)),
            )
        except Exception:
            if cost_key is not None:
                log.warning("move failed after paying for a choice; refunding", user_id=user_id)
                self._besitos.compensate(user_id, choice.cost_besitos, cost_key)
            raise
        balance = cost.balance if cost is not None else moved.besitos
        reward: BalanceChange | None = None
        reward_key: str | None = None
        if choice.reward_besitos:
            reward_key = system_key(user_id, f"reward:{fragment_id}:{choice_id}")
            try:
                reward = ledger.credit(
                    user_id, choice.reward_besitos, reward_key, CHOICE_REWARD,
                    events=self._drafts.of(draft.besitos(user_id, choice.reward_besitos,
                                                         reward_key, CHOICE_REWARD)),
                )
                balance = reward.balance
            except BalanceLimit:  # the move stands; a full wallet takes no reward
                log.info("choice reward not paid: balance at its limit", user_id=user_id)
                reward_key = None
        return ChoiceOutcome(choice=choice, fragment=target, document=moved, balance=balance,
                             cost=cost, cost_key=cost_key, reward=reward, reward_key=reward_key)

    def render(self, fragment: Fragment, document: UserDocument, is_vip: Callable[[], bool],
               balance: int | None = None) -> FragmentView:
        """``fragment`` as ``document``'s reader sees it, in their language (``is_vip`` is
        called only when a choice needs VIP)."""
        language = document.language
        vip = is_vip() if any(choice.requires_vip for choice in fragment.choices) else False
        reader = Reader(document.besitos if balance is None else balance,
                        frozenset(document.inventory), vip)
        choices = []
        for choice in fragment.choices:
            refusal = why_not(choice, reader)
            choices.append(ChoiceView(
                choice_id=choice.choice_id, label=choice.label.in_(language),
                next_fragment=choice.next_fragment, cost_besitos=choice.cost_besitos,
                reward_besitos=choice.reward_besitos, requires_item=choice.requires_item,
                requires_vip=choice.requires_vip, available=refusal is None,
                why_not=refusal.code if refusal is not None else None,
            ))
        return FragmentView(
            fragment_id=fragment.fragment_id, title=fragment.title.in_(language),
            text=fragment.text.in_(language), vip_only=fragment.vip_only,
            choices=tuple(choices), ending=fragment.ending, balance=reader.besitos,
        )
