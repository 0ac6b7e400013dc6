"""Rules of the story, without I/O: who may see a fragment and who may take a choice."""

from __future__ import annotations

from dataclasses import dataclass

from yabot.domain.narrative import Choice, Fragment
from yabot.errors import (
    InsufficientBesitos,
    InvalidChoice,
    ItemRequired,
    StaleChoice,
    VipRequired,
    YabotError,
)


@dataclass(frozen=True)
class Reader:
    """What the rules need to know about a user at one moment."""

    besitos: int
    inventory: frozenset[str]
    vip: bool


def ensure_may_read(fragment: Fragment, vip: bool) -> None:
    """`VipRequired` when ``fragment`` is VIP-only and the reader is not VIP."""
    if fragment.vip_only and not vip:
        raise VipRequired(f"fragment {fragment.fragment_id} is for VIP members")


def why_not(choice: Choice, reader: Reader) -> YabotError | None:
    """Why ``reader`` cannot take ``choice`` now (VIP first, then item, then besitos), or None."""
    if choice.requires_vip and not reader.vip:
        return VipRequired(f"choice {choice.choice_id} is for VIP members")
    if choice.requires_item is not None and choice.requires_item not in reader.inventory:
        return ItemRequired(f"choice {choice.choice_id} needs the item {choice.requires_item}")
    if choice.cost_besitos > reader.besitos:
        return InsufficientBesitos(
            f"choice {choice.choice_id} costs {choice.cost_besitos} besitos, "
            f"{reader.besitos} available"
        )
    return None


def select_choice(fragment: Fragment, current: str, choice_id: str, reader: Reader) -> Choice:
    """The choice ``choice_id`` of ``fragment`` if a reader standing at ``current`` may take it.

    Raises `StaleChoice` (the reader is elsewhere now), `InvalidChoice` (no such choice here),
    or what `why_not` says.
    """
    if fragment.fragment_id != current:
        raise StaleChoice(f"you are no longer at {fragment.fragment_id}")
    choice = fragment.choice(choice_id)
    if choice is None:
        raise InvalidChoice(f"fragment {fragment.fragment_id} offers no choice {choice_id!r}")
    refusal = why_not(choice, reader)
    if refusal is not None:
        raise refusal
    return choice
