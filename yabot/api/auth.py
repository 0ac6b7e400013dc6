"""Service authentication: JWTs with a pinned algorithm, every claim required, scopes per route.

One algorithm per deployment (``JWT_ALGORITHM``): HS256 with a shared secret (the default), or
EdDSA / RS256 with PEM key files. The token's own header never chooses the algorithm, and HMAC
and asymmetric algorithms are never accepted together (that mix is what lets a public key be
used as an HMAC secret). The header's ``kid`` picks the key: during a rotation the previous key
stays valid under its own id; an unknown ``kid`` is refused.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon
import jwt

from yabot.api.policy import SCOPES as SCOPES  # re-exported: `yabot token` lists them
from yabot.api.policy import policy_of, responders
from yabot.errors import ConfigError, Forbidden, Unauthorized
from yabot.settings import JwtAlgorithm, Settings

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]

@dataclass(frozen=True)
class KeySet:
    """The keys of one deployment by ``kid``: what verifies tokens and what signs them."""

    algorithm: JwtAlgorithm
    current_kid: str
    verifying: Mapping[str, str | bytes]
    signing: Mapping[str, str | bytes]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySet:
        conf = settings.jwt
        verifying: dict[str, str | bytes] = {}
        signing: dict[str, str | bytes] = {}
        if conf.algorithm is JwtAlgorithm.HS256:
            verifying[conf.key_id] = signing[conf.key_id] = settings.jwt_secret()
            if conf.previous_key_id is not None and conf.previous_secret is not None:
                previous = conf.previous_secret.get_secret_value()
                verifying[conf.previous_key_id] = signing[conf.previous_key_id] = previous
        else:
            assert conf.public_key_file is not None  # the settings validator requires it
            verifying[conf.key_id] = _read_key(conf.public_key_file)
            if conf.private_key_file is not None:
                signing[conf.key_id] = _read_key(conf.private_key_file)
            if conf.previous_key_id is not None and conf.previous_public_key_file is not None:
                verifying[conf.previous_key_id] = _read_key(conf.previous_public_key_file)
        return cls(conf.algorithm, conf.key_id, verifying, signing)


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read JWT key file {path}: {exc.strerror}") from exc


class TokenVerifier:
    """Checks bearer tokens against the deployment's keys, issuer and audience.

    A token that verified is remembered (up to ``CACHE_SIZE`` tokens) until its ``exp``, so a
    service calling many times with one token pays for the signature check once. Only valid
    tokens are remembered; a remembered token is still refused once it expires.
    """

    CACHE_SIZE = 4096

    def __init__(self, settings: Settings, keys: KeySet | None = None) -> None:
        self._keys = keys or KeySet.from_settings(settings)
        self._issuer = settings.jwt.issuer
        self._audience = settings.jwt.audience
        self._leeway = settings.jwt.leeway_seconds
        self._jwt = jwt.PyJWT(options={"enforce_minimum_key_length": True})
        self._verified: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; `Unauthorized` (never quoting the token) otherwise."""
        cached = self.remembered(token)
        if cached is not None:
            return cached
        if token in self._verified:
            raise Unauthorized("token expired")
        claims = self._verify(token)
        if isinstance(claims["exp"], int | float):
            with self._lock:
                if len(self._verified) >= self.CACHE_SIZE:
                    self._verified.clear()
                self._verified[token] = claims
        return claims

    def remembered(self, token: str) -> dict[str, Any] | None:
        """The claims of ``token`` if it verified before and has not expired since; None for
        any other token (never verified here, refused, or expired). No signature check."""
        cached = self._verified.get(token)
        if cached is not None and time.time() <= cached["exp"] + self._leeway:
            return cached
        return None

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from exc
        kid = header.get("kid", self._keys.current_kid)
        key = self._keys.verifying.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("invalid token: unknown key id")
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                key,
                algorithms=[self._keys.algorithm.value],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized("invalid token: sub must be a non-empty string")
        return claims


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header value; None for any other value."""
    scheme, _, rest = (authorization or "").partition(" ")
    token = rest.strip()
    return token if token and scheme.lower() == "bearer" else None


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The ``scope`` claim (space-separated, as in RFC 8693) as a set."""
    scope = claims.get("scope")
    return _scope_set(scope) if isinstance(scope, str) else frozenset()


@functools.lru_cache(maxsize=256)
def _scope_set(scope: str) -> frozenset[str]:
    # Every request with a token asks; the deployment's tokens carry a few distinct claims.
    return frozenset(scope.split())


def mint_token(
    settings: Settings,
    subject: str,
    scopes: Sequence[str] = (),
    ttl_seconds: int = 3600,
    key_id: str | None = None,
) -> str:
    """A token for the service ``subject``, valid ``ttl_seconds``, signed with the key
    ``key_id`` (default: the current key, ``JWT_KEY_ID``)."""
    keys = KeySet.from_settings(settings)
    kid = key_id or keys.current_kid
    key = keys.signing.get(kid)
    if key is None:
        known = ", ".join(sorted(keys.signing)) or "none (set JWT_PRIVATE_KEY_FILE)"
        raise ConfigError(f"no signing key with id {kid!r}; signing keys: {known}")
    now = int(time.time())
    claims = {
        "iss": settings.jwt.issuer,
        "aud": settings.jwt.audience,
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
        "scope": " ".join(scopes),
    }
    return jwt.encode(claims, key, algorithm=keys.algorithm.value, headers={"kid": kid})


class RequireToken:
    """Middleware: a resource's declared `RoutePolicy` decides. A public one needs nothing;
    any other needs a valid bearer token, and for a method the resource answers, the scope
    its policy names for that method. Fails closed: a resource without a policy is refused
    (`create_app` does not start with one; this is the second line).

    Runs in ``process_resource`` (after routing) so unknown routes still answer 404/405.
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier
        self._responders: dict[type, frozenset[str]] = {}

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if resource is None:
            return
        try:
            policy = policy_of(resource)
        except ConfigError as exc:
            raise Forbidden("this route declares no access policy") from exc
        if policy.public:
            return
        # The environ's own key: `req.auth` spells the header name out on every request.
        token = bearer_token(req.env.get("HTTP_AUTHORIZATION"))
        if token is None:
            raise Unauthorized("a bearer token is required")
        claims = self._verifier.verify(token)
        req.context.claims = claims
        req.context.subject = claims["sub"]
        answered = self._responders.get(type(resource))
        if answered is None:
            answered = self._responders[type(resource)] = responders(resource)
        if req.method not in answered:
            return  # falcon's own 405 / OPTIONS answer: nothing to protect
        required = policy.scopes.get(req.method)
        if required is None or required not in token_scopes(claims):
            raise Forbidden(f"this operation needs the scope {required or '(none declared)'}")
