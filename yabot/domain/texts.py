"""Texts the bot shows in the user's language."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from yabot.domain.users import Language


class Localized(BaseModel):
    """A text in every language the bot speaks. A plain string is read as the same text in
    both (handy in tests; the seed story always gives both)."""

    model_config = ConfigDict(frozen=True)

    es: Annotated[str, Field(max_length=4096)]
    en: Annotated[str, Field(max_length=4096)]

    @model_validator(mode="before")
    @classmethod
    def _from_plain_text(cls, value: Any) -> Any:
        return {"es": value, "en": value} if isinstance(value, str) else value

    def in_(self, language: Language) -> str:
        return self.es if language == "es" else self.en
