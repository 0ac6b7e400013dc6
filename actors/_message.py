"""Typed messages: the only things actors send each other."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

R = TypeVar("R")


class Message(BaseModel):
    """An immutable message. Every actor declares its protocol as subclasses of this."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Ask(Message, Generic[R]):
    """A message that is answered with an `R`.

    ``class GetState(Ask[UserState])`` lets `ask(ref, GetState(...))` be typed as
    returning `UserState` without a cast at the call site.
    """
