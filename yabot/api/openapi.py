"""The OpenAPI 3.1 document of the API, served at ``/openapi.json``.

Written here by hand around the pydantic models the resources really parse and return, so the
schemas cannot drift from the code. Routes other parts add to the app (``extra_routes``: the
Telegram webhook) describe themselves (`extra_path_items`). `tests/api/test_operations.py`
checks that every route the app serves is documented and nothing else, with and without the
webhook, and `tests/api/test_schemathesis.py` checks that responses conform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import falcon
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from yabot import __version__ as VERSION
from yabot.api.policy import PUBLIC, SCOPES, policy_of
from yabot.api.resources import IDEMPOTENCY_KEY
from yabot.api.responses import (
    RESPONSES,
    FragmentResponse,
    GiftResponse,
    LedgerPageResponse,
    PreferencesResponse,
    PurchaseResponse,
    SubscriptionResponse,
    TransactionResponse,
    UserStateResponse,
)
from yabot.api.schemas import (
    GiftBody,
    PreferencesBody,
    ProvisionBody,
    PurchaseBody,
    SubscriptionBody,
    TransactionBody,
)
from yabot.domain.ledger_pages import (
    CURSOR_PATTERN,
    DEFAULT_LEDGER_PAGE,
    MAX_CURSOR_LENGTH,
    MAX_LEDGER_PAGE,
)

MAX_USER_ID = 2**53 - 1
#: What an ``openapi`` attribute of a resource holds: method in lower case → operation object.
Operations = Mapping[str, Mapping[str, Any]]
_REF = "#/components/schemas/{model}"
_OPENAPI_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_REQUESTS: tuple[type[BaseModel], ...] = (
    PreferencesBody, TransactionBody, SubscriptionBody, ProvisionBody, PurchaseBody, GiftBody,
)
_RESPONSES: tuple[type[BaseModel], ...] = RESPONSES

_STATUS_TEXT = {
    400: "Bad request: an invalid id, parameter, header or body",
    401: "No valid bearer token",
    403: "The token lacks the operation's scope, or the domain forbids it (e.g. vip-required)",
    404: "No such user or fragment",
    409: "Conflict (e.g. idempotency-conflict, insufficient-besitos, balance-limit)",
    411: "A body sent without Content-Length",
    413: "The body is larger than API_MAX_BODY_BYTES",
    415: "The body is not application/json",
    422: "Valid by the schema, but the domain cannot do it (a transfer to oneself, a plan "
         "ending in the past)",
    429: "Too many requests for this token's subject; see Retry-After",
    503: "A store or the actor runtime cannot serve now; retry later",
    504: "The user's session did not answer in time",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The response object of an error ``status`` (a problem document; 429 and 503 carry
    ``Retry-After``), described by ``description`` or the API's usual text for it."""
    response: dict[str, Any] = {
        "description": description or _STATUS_TEXT[status],
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}}
    return response


def _operation(
    operation_id: str, summary: str, scope: str, ok: type[BaseModel],
    parameters: list[dict[str, Any]], body: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (400, 404), links: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    statuses = {400, 401, 403, 429, 503, 504, *errors}
    if body is not None:
        statuses |= {411, 413, 415}
    success: dict[str, Any] = {
        "description": "OK", "content": {"application/json": {"schema": _ref(ok)}},
    }
    if links:
        success["links"] = dict(links)
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "security": [{"bearerAuth": [scope]}],
        "parameters": parameters,
        "responses": {
            "200": success,
            **{str(status): problem_response(status) for status in sorted(statuses)},
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


_USER_ID_PATH = {
    "name": "user_id", "in": "path", "required": True, "description": "Telegram user id",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_USER_ID},
}
_USER_ID_QUERY = {**_USER_ID_PATH, "in": "query"}
_FRAGMENT_ID = {
    "name": "fragment_id", "in": "path", "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128,
               "pattern": "^[a-z0-9][a-z0-9_.-]*$"},
}
_IDEMPOTENCY = {
    "name": IDEMPOTENCY_KEY, "in": "header", "required": True,
    "description": "Repeating a request with its key changes nothing; a different body with "
                   "the same key is 409",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
}


_LIMIT = {
    "name": "limit", "in": "query", "required": False,
    "description": f"Entries per page (default {DEFAULT_LEDGER_PAGE})",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LEDGER_PAGE},
}
_CURSOR = {
    "name": "cursor", "in": "query", "required": False,
    "description": "A previous page's next_cursor, as it was (opaque); none: the newest "
                   "entries. A well-formed cursor this API did not return for this user is "
                   "422",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_LENGTH,
               "pattern": CURSOR_PATTERN},
}


def _links(operation_ids: tuple[str, ...], user_id: str) -> dict[str, Any]:
    """OpenAPI links from one operation's answer to ``operation_ids`` on the same user
    (``user_id``: a runtime expression), so clients and stateful fuzzing follow them."""
    return {operation_id: {"operationId": operation_id, "parameters": {"user_id": user_id}}
            for operation_id in operation_ids}


_READ_BACK = _links(("getUserState",), "$request.path.user_id")


_LEDGER_BACK = _links(("getLedger",), "$request.path.user_id")


def _ledger() -> dict[str, Any]:
    """``GET /user/{user_id}/besitos``: a page of the ledger; links to the next page."""
    return _operation(
        "getLedger", "The user's besitos ledger, newest first, one page per request",
        "users:read", LedgerPageResponse, [_USER_ID_PATH, _LIMIT, _CURSOR], None,
        (400, 404, 422), links={"getNextLedgerPage": {
            "operationId": "getLedger", "description": "The next page (none after the last)",
            "parameters": {"user_id": "$request.path.user_id",
                           "cursor": "$response.body#/next_cursor"}}})


def _provision() -> dict[str, Any]:
    """``PUT /user/{user_id}``: 201 when it created the user, 200 when the user existed."""
    operation = _operation(
        "provisionUser", "Provision a user known from Telegram (idempotent)", "users:write",
        UserStateResponse, [_USER_ID_PATH], ProvisionBody,
        links=_links(("getUserState", "transactBesitos", "putSubscription"),
                     "$request.path.user_id"))
    ok = operation["responses"]["200"]
    operation["responses"] = {
        "200": {**ok, "description": "The user existed; nothing changed"},
        "201": {**ok, "description": "Created"},
        **{k: v for k, v in operation["responses"].items() if k != "200"},
    }
    return operation


def _health(description: str, ready: bool) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Health"}
    responses: dict[str, Any] = {"200": {
        "description": description, "content": {"application/health+json": {"schema": schema}},
    }}
    if ready:
        responses["503"] = {
            "description": "Not ready (a check fails, or the process is shutting down)",
            "content": {"application/health+json": {"schema": schema}},
        }
    return {"summary": description, "security": [], "responses": responses}


def _components() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation") for m in _REQUESTS] + [(m, "serialization") for m in _RESPONSES],
        ref_template=_REF,
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Problem"] = {
        "type": "object", "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "description": "/problems/<code>"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    }
    check = {
        "type": "object", "required": ["status"],
        "properties": {
            "status": {"enum": ["pass", "warn", "fail"]},
            "time": {"type": "string"},
            "observedValue": {"type": "number"},
            "observedUnit": {"type": "string"},
            "output": {"type": "string"},
            "details": {"type": "object"},
        },
    }
    schemas["Health"] = {
        "type": "object", "required": ["status"],
        "properties": {
            "status": {"enum": ["pass", "warn", "fail"]},
            "checks": {"type": "object", "additionalProperties": {"type": "array", "items": check}},
        },
    }
    return schemas


def extra_path_items(routes: Mapping[str, object]) -> dict[str, Operations]:
    """The document's entries for routes other parts add to the app (path → resource).

    A resource describes its operations in an ``openapi`` attribute (`Operations`). One
    without it still gets an entry per responder (``on_get`` …) saying it is not described,
    so the document lists every route the app serves (the benchmark's hello-world route)."""
    items: dict[str, Operations] = {}
    for path, resource in routes.items():
        described: Operations | None = getattr(resource, "openapi", None)
        if described is not None:
            items[path] = described
            continue
        policy = policy_of(resource)
        items[path] = {
            method: {"summary": "Not described",
                     "security": [] if policy.public else [
                         {"bearerAuth": [policy.scopes[method.upper()]]}],
                     "responses": {"default": {"description": "Not described"}}}
            for method in _OPENAPI_METHODS
            if callable(getattr(resource, f"on_{method}", None))
        }
    return items


def openapi_document(extra_paths: Mapping[str, Operations] | None = None) -> dict[str, Any]:
    """The document, with ``extra_paths`` (`extra_path_items`) after the API's own; built
    once per app."""
    user = [_USER_ID_PATH]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "YABOT internal API",
            "version": VERSION,
            "description": "Internal services read and change user state. Errors are RFC 9457 "
                           "problem details (application/problem+json).",
        },
        "paths": {
            "/user/{user_id}": {"put": _provision()},
            "/user/{user_id}/purchases": {"post": _operation(
                "buyItem", "Buy an item with the user's besitos, once per Idempotency-Key",
                "besitos:write", PurchaseResponse, [*user, _IDEMPOTENCY], PurchaseBody,
                (400, 403, 404, 409), links=_READ_BACK)},
            "/user/{user_id}/gifts": {"post": _operation(
                "giftItem", "Buy an item for another user, once per Idempotency-Key",
                "besitos:write", GiftResponse, [*user, _IDEMPOTENCY], GiftBody,
                (400, 403, 404, 409, 422), links={**_READ_BACK, "getRecipientState": {
                    "operationId": "getUserState", "description": "The gift's recipient",
                    "parameters": {"user_id": "$request.body#/to_user_id"}}})},
            "/user/{user_id}/state": {"get": _operation(
                "getUserState", "The user's merged state", "users:read", UserStateResponse, user,
                links=_links(("transactBesitos", "getLedger", "putPreferences",
                              "getSubscription", "putSubscription"), "$response.body#/user_id")
                | {"getFragment": {"operationId": "getFragment", "parameters": {
                    "query.user_id": "$response.body#/user_id"}}})},
            "/user/{user_id}/preferences": {"put": _operation(
                "putPreferences",
                "Replace all of the user's preferences (every field required)", "users:write",
                PreferencesResponse, user, PreferencesBody, links=_READ_BACK)},
            "/narrative/{fragment_id}": {"get": _operation(
                "getFragment", "A story fragment as the user sees it", "narrative:read",
                FragmentResponse, [_FRAGMENT_ID, _USER_ID_QUERY])},
            "/user/{user_id}/besitos": {"get": _ledger(), "post": _operation(
                "transactBesitos", "Earn, spend or transfer besitos, once per Idempotency-Key",
                "besitos:write", TransactionResponse, [*user, _IDEMPOTENCY], TransactionBody,
                (400, 404, 409, 422), links={**_READ_BACK, **_LEDGER_BACK, "getRecipientState": {
                    "operationId": "getUserState",
                    "description": "A transfer's recipient, read back",
                    "parameters": {"user_id": "$request.body#/to_user_id"}}})},
            "/user/{user_id}/subscription": {
                "get": _operation("getSubscription", "The user's subscription", "users:read",
                                  SubscriptionResponse, user),
                "put": _operation("putSubscription", "Start or cancel a plan",
                                  "subscriptions:write", SubscriptionResponse, user,
                                  SubscriptionBody, (400, 404, 422),
                                  links=_links(("getSubscription", "getUserState"),
                                               "$request.path.user_id")),
            },
            "/healthz": {"get": _health("Liveness: the process answers", ready=False)},
            "/readyz": {"get": _health("Readiness: stores, bus, actor tree", ready=True)},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (HTTP, actors, events)", "security": [],
                "responses": {"200": {"description": "Prometheus text format",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }},
            "/openapi.json": {"get": {
                "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}}},
            }},
            **(extra_paths or {}),
        },
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "Scopes (the token's space-separated `scope` claim): "
                               + "; ".join(f"{k}: {v}" for k, v in SCOPES.items()),
            }},
        },
        "security": [{"bearerAuth": []}],
    }


class OpenApiResource:
    """``GET /openapi.json``."""

    policy = PUBLIC

    def __init__(self, extra_paths: Mapping[str, Operations] | None = None) -> None:
        self._document = openapi_document(extra_paths)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._document
