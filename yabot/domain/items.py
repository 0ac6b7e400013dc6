"""Items users can buy with besitos and keep in their inventory."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class Item(BaseModel):
    """A catalogue entry, identified by its ``sku``."""

    model_config = ConfigDict(frozen=True)

    sku: Sku
    name: Annotated[str, Field(min_length=1, max_length=256)]
    description: str = ""
    price_besitos: Annotated[int, Field(ge=0)] = 0
    vip_only: bool = False
