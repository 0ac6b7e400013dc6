"""The story: fragments of text in Spanish and English, and the choices that lead on."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from yabot.domain.items import Sku
from yabot.domain.texts import Localized

FragmentId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
ChoiceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class Choice(BaseModel):
    """One way out of a fragment. It may cost besitos (``cost_besitos``) or pay some
    (``reward_besitos``, once per user), need an item in the inventory, or need VIP."""

    model_config = ConfigDict(frozen=True)

    choice_id: ChoiceId
    # "text": the field's name before MongoDB step 3 / the localized story.
    label: Localized = Field(validation_alias=AliasChoices("label", "text"))
    next_fragment: FragmentId
    cost_besitos: Annotated[int, Field(ge=0, lt=2**53)] = 0
    reward_besitos: Annotated[int, Field(ge=0, lt=2**53)] = 0
    requires_item: Sku | None = None
    requires_vip: bool = False

    @model_validator(mode="after")
    def _costs_or_pays(self) -> Choice:
        if self.cost_besitos and self.reward_besitos:
            raise ValueError("a choice either costs besitos or pays them, not both")
        return self


class Fragment(BaseModel):
    """A piece of the story shown to the user, with its choices (none: an ending)."""

    model_config = ConfigDict(frozen=True)

    fragment_id: FragmentId
    title: Localized = Localized(es="", en="")
    text: Localized
    vip_only: bool = False
    choices: tuple[Choice, ...] = ()

    @property
    def ending(self) -> bool:
        return not self.choices

    def choice(self, choice_id: str) -> Choice | None:
        return next((c for c in self.choices if c.choice_id == choice_id), None)
