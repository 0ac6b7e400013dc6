"""Service authentication: JWTs signed with HS256, verified with every claim required."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import falcon
import jwt

from yabot.errors import Unauthorized
from yabot.settings import Settings

ALGORITHM = "HS256"  # pinned: the token's own header never chooses the algorithm
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


class TokenVerifier:
    """Checks bearer tokens against the settings' secret, issuer and audience."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret()
        self._issuer = settings.jwt.issuer
        self._audience = settings.jwt.audience
        self._leeway = settings.jwt.leeway_seconds
        self._jwt = jwt.PyJWT(options={"enforce_minimum_key_length": True})

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; `Unauthorized` (without the token in the message) otherwise."""
        try:
            return self._jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from exc


def mint_token(
    settings: Settings, subject: str, scopes: Sequence[str] = (), ttl_seconds: int = 3600
) -> str:
    """A token for the service ``subject``, valid ``ttl_seconds``."""
    now = int(time.time())
    claims = {
        "iss": settings.jwt.issuer,
        "aud": settings.jwt.audience,
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
        "scope": " ".join(scopes),
    }
    return jwt.encode(claims, settings.jwt_secret(), algorithm=ALGORITHM)


class RequireToken:
    """Middleware: every resource needs a valid bearer token unless it sets ``public = True``.

    Runs in ``process_resource`` (after routing) so unknown routes still answer 404/405.
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        scheme, _, token = (req.auth or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a bearer token is required")
        req.context.claims = self._verifier.verify(token.strip())
