"""Route policy: every resource declares who may call it, and the app fails closed.

A resource says it is public (`PUBLIC`: no token) or names the token scope each of its
responders needs (`requires`). `check_route_policy` runs when the app is built: a resource
without a policy, a responder without a scope, a scope for a method the resource does not
answer, or a scope nobody can be given (not in `SCOPES`) stops the app from starting
(`ConfigError`). `RequireToken` then reads only the declared policy, never guesses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import falcon

from yabot.errors import ConfigError

#: Every scope a route may require (documented in the README and the OpenAPI document).
SCOPES: Mapping[str, str] = MappingProxyType({
    "users:read": "read a user's state, subscription and besitos ledger",
    "users:write": "change a user's preferences; provision a user",
    "narrative:read": "read story fragments as a user sees them",
    "besitos:write": "earn, spend and transfer besitos; buy and gift items",
    "subscriptions:write": "start or cancel a user's subscription",
    "stats:read": "read the daily figures of the whole bot",
})


@dataclass(frozen=True)
class RoutePolicy:
    """``public``: no token needed. Otherwise ``scopes`` maps each HTTP method the resource
    answers to the scope a token must carry for it."""

    public: bool = False
    scopes: Mapping[str, str] = field(default_factory=dict)


PUBLIC = RoutePolicy(public=True)


def requires(**scopes: str) -> RoutePolicy:
    """A token-protected resource: ``requires(GET="users:read", PUT="users:write")``."""
    return RoutePolicy(public=False, scopes=MappingProxyType(dict(scopes)))


def responders(resource: object) -> frozenset[str]:
    """The HTTP methods ``resource`` answers itself (an ``on_<method>``); falcon answers any
    other with its own 405 (or OPTIONS), which touches nothing."""
    return frozenset(method for method in falcon.constants.COMBINED_METHODS
                     if callable(getattr(resource, f"on_{method.lower()}", None)))


def policy_of(resource: object) -> RoutePolicy:
    """The policy ``resource`` declares; `ConfigError` if it declares none."""
    policy = getattr(resource, "policy", None)
    if not isinstance(policy, RoutePolicy):
        raise ConfigError(
            f"{type(resource).__name__} declares no route policy: set "
            "`policy = PUBLIC` or `policy = requires(GET=...)` (yabot.api.policy)"
        )
    return policy


def check_route_policy(path: str, resource: object) -> RoutePolicy:
    """``resource``'s policy, checked against what it answers (see the module docstring)."""
    policy = policy_of(resource)
    if policy.public:
        if policy.scopes:
            raise ConfigError(f"{path}: a public route needs no scopes")
        return policy
    answered = responders(resource)
    if missing := sorted(answered - set(policy.scopes)):
        raise ConfigError(f"{path}: no scope declared for {', '.join(missing)}")
    if stale := sorted(set(policy.scopes) - answered):
        raise ConfigError(f"{path}: scopes declared for methods it does not answer: "
                          f"{', '.join(stale)}")
    if unknown := sorted(set(policy.scopes.values()) - set(SCOPES)):
        raise ConfigError(f"{path}: unknown scopes {', '.join(unknown)}")
    return policy
