"""Request bodies: size, framing and media type are checked before a resource reads a byte.

Neither Falcon nor gunicorn limits a body's size, and Falcon reads ``Content-Length or 0``
bytes, so a chunked body would read as empty: such a request is refused (411) instead.
"""

from __future__ import annotations

from typing import Any

import falcon

from yabot.errors import LengthRequired, PayloadTooLarge, UnsupportedMediaType

JSON = "application/json"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: The WSGI environ keys that frame a body.
_FRAMING_FIELDS = frozenset({"CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"})


class BodyLimits:
    """Middleware (``process_resource``, so unknown routes still answer 404/405): 411 for
    ``Transfer-Encoding`` without ``Content-Length``, 413 over ``API_MAX_BODY_BYTES``, 415 for
    a body on POST/PUT/PATCH that is not ``application/json``. A resource with a
    ``max_body_bytes`` attribute sets its own size limit (the Telegram webhook)."""

    def __init__(self, max_body_bytes: int) -> None:
        self._max = max_body_bytes

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if resource is None or not _FRAMING_FIELDS & req.env.keys():
            return  # no body, and nothing claims one: most requests (every GET)
        length = req.content_length
        if length is None and req.get_header("Transfer-Encoding"):
            raise LengthRequired("a request body needs a Content-Length header")
        limit: int = getattr(resource, "max_body_bytes", self._max)
        if length is not None and length > limit:
            raise PayloadTooLarge(f"the body may be at most {limit} bytes")
        if req.method in BODY_METHODS and length:
            media_type = (req.content_type or "").partition(";")[0].strip().lower()
            if media_type != JSON:
                raise UnsupportedMediaType(f"the body must be {JSON}")
