"""Items users can buy with besitos and keep in their inventory."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from yabot.domain.texts import Localized
from yabot.domain.users import Language

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class Item(BaseModel):
    """A catalogue entry, identified by its ``sku``.

    ``name`` and ``description`` are what a reader sees; ``names`` / ``descriptions``, when
    set, hold them in every language and `in_` picks one (replies carry the picked text)."""

    model_config = ConfigDict(frozen=True)

    sku: Sku
    name: Annotated[str, Field(min_length=1, max_length=256)]
    description: str = ""
    price_besitos: Annotated[int, Field(ge=0, lt=2**53)] = 0
    vip_only: bool = False
    names: Localized | None = None
    descriptions: Localized | None = None

    def in_(self, language: Language) -> Item:
        """This item with ``name`` and ``description`` in ``language``."""
        return self.model_copy(update={
            "name": self.names.in_(language) if self.names else self.name,
            "description": (self.descriptions.in_(language) if self.descriptions
                            else self.description),
        })
