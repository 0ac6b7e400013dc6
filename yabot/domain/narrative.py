"""The story: fragments of text and the choices that lead from one to the next."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

FragmentId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class Choice(BaseModel):
    """One way out of a fragment; it may cost besitos or need VIP."""

    model_config = ConfigDict(frozen=True)

    choice_id: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(min_length=1, max_length=512)]
    next_fragment: FragmentId
    cost_besitos: Annotated[int, Field(ge=0)] = 0
    requires_vip: bool = False


class Fragment(BaseModel):
    """A piece of the story shown to the user, with its choices (none: an ending)."""

    model_config = ConfigDict(frozen=True)

    fragment_id: FragmentId
    title: Annotated[str, Field(max_length=256)] = ""
    text: Annotated[str, Field(min_length=1)]
    vip_only: bool = False
    choices: tuple[Choice, ...] = ()
