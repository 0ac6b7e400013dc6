"""Strict reading of the request line: one meaning per request.

A query parameter given twice (``?user_id=1&user_id=2``) has no agreed meaning — a proxy, a
cache or a log may read the first while the API reads the last — so it is refused (400)
instead of picking one. Path ids are checked where they are parsed
(`yabot.api.resources.parse_user_id`); bodies in `yabot.api.schemas.parse_body`.
"""

from __future__ import annotations

from typing import Any

import falcon

from yabot.errors import InvalidInput


class RefuseRepeatedParameters:
    """Middleware (``process_resource``, so unknown routes still answer 404/405): 400 for a
    query parameter that appears more than once."""

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if resource is None:
            return
        for name, value in req.params.items():
            if isinstance(value, list):
                raise InvalidInput(f"query parameter {name[:64]!r} given more than once")


def single(value: str | list[str] | None) -> str | None:
    """A query value parsed by the route itself (``falcon.uri.parse_query_string``): one
    value or none; a list only if `RefuseRepeatedParameters` did not run."""
    if isinstance(value, list):
        raise InvalidInput("a query parameter was given more than once")
    return value
