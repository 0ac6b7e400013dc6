"""A user's ledger history in pages, newest first, and the opaque cursors between pages.

Newest first because a reader wants recent activity, and because changes recorded while a
client pages never shift the pages after the first: they land in front of it. A cursor names
the last entry a page returned by its position in the backend's own order (the row id on the
``sql`` backend; ``created_at`` then ``_id`` on ``mongo``), with the user it belongs to, as
base64url JSON. Clients must not build or edit one: a cursor that does not decode to a
position of this backend and this user is refused: `InvalidInput` (HTTP 400) when it is not
even shaped like a cursor (`CURSOR_PATTERN`, at most `MAX_CURSOR_LENGTH`), `Unprocessable`
(HTTP 422: well-formed by the API's schema, but no place in this history) otherwise.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from yabot.domain.besitos import LedgerEntry
from yabot.errors import InvalidInput, Unprocessable

#: The most entries one page holds, and the page size when the caller names none.
MAX_LEDGER_PAGE = 100
DEFAULT_LEDGER_PAGE = 20
#: No cursor this module writes is longer (a user id, a date and an ObjectId, encoded).
MAX_CURSOR_LENGTH = 256
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
_CURSOR = re.compile(r"[A-Za-z0-9_-]+")


class LedgerPage(BaseModel):
    """Entries newest first; ``next_cursor`` reads the page after this one (None: this is the
    last page)."""

    model_config = ConfigDict(frozen=True)

    entries: tuple[LedgerEntry, ...]
    next_cursor: str | None = None


class LedgerPosition(BaseModel):
    """Base of a backend's position: ``u`` is the user whose history it is in."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    u: int


P = TypeVar("P", bound=LedgerPosition)


def well_formed_cursor(cursor: str) -> bool:
    """Whether ``cursor`` has a cursor's shape (`CURSOR_PATTERN`, at most `MAX_CURSOR_LENGTH`)."""
    return 0 < len(cursor) <= MAX_CURSOR_LENGTH and _CURSOR.fullmatch(cursor) is not None


def encode_cursor(position: LedgerPosition) -> str:
    raw = json.dumps(position.model_dump(mode="json"), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, model: type[P], user_id: int) -> P:
    """The position ``cursor`` names in ``user_id``'s history, or `InvalidInput` /
    `Unprocessable` (see the module docstring)."""
    if not well_formed_cursor(cursor):
        raise InvalidInput(f"cursor must be 1-{MAX_CURSOR_LENGTH} of A-Z a-z 0-9 _ -")
    refused = Unprocessable("cursor is not one this API returned for this user's history")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                               validate=True)
        # JSON mode: strict models still read a date from its ISO text.
        position = model.model_validate_json(raw)
    except (binascii.Error, ValueError, ValidationError):
        raise refused from None
    if position.u != user_id:
        raise refused
    return position
