"""HTTP resources: each turns a request into one ask on the user's session and the reply into
JSON. ``policy`` declares who may call each (`yabot.api.policy`, checked by `RequireToken`)."""

from __future__ import annotations

import re
import weakref
from typing import Any

import falcon
from pydantic import TypeAdapter, ValidationError

from yabot.api.bridge import ApiBridge
from yabot.api.policy import PUBLIC, requires
from yabot.api.responses import (
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
    Transfer,
    parse_body,
)
from yabot.api.strict import single
from yabot.domain.ledger_pages import (
    DEFAULT_LEDGER_PAGE,
    MAX_CURSOR_LENGTH,
    MAX_LEDGER_PAGE,
    well_formed_cursor,
)
from yabot.domain.narrative import FragmentId
from yabot.domain.subscriptions import Plan
from yabot.domain.users import TelegramIdentity
from yabot.errors import InvalidInput
from yabot.sessions.messages import (
    BuyItem,
    ChangeSubscription,
    GetLedger,
    GetSubscription,
    GiftItem,
    Preferences,
    SetPreferences,
    ShowFragment,
    Start,
    Transact,
)
from yabot.views import UserState

IDEMPOTENCY_KEY = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # visible ASCII, as LedgerKey allows
_FRAGMENT_ID: TypeAdapter[str] = TypeAdapter(FragmentId)
#: One spelling per id: ``/user/01001`` is not user 1001 (a cache or a log would see two).
_USER_ID = re.compile(r"^[1-9][0-9]{0,15}$")
MAX_USER_ID = 2**53 - 1
_LIMIT = re.compile(r"^[1-9][0-9]{0,2}$")
#: What the app answers ``application/json`` with (Falcon's default handler).
_JSON = falcon.media.JSONHandler()


def parse_user_id(raw: str | None, name: str = "user id") -> int:
    """A Telegram user id from a path segment or query value, or `InvalidInput`."""
    if raw is None or raw == "":
        raise InvalidInput(f"{name} is required")
    if not _USER_ID.match(raw) or int(raw) > MAX_USER_ID:
        raise InvalidInput(f"{name} must be a positive integer below 2^53, without leading 0")
    return int(raw)


def parse_fragment_id(raw: str) -> str:
    try:
        return _FRAGMENT_ID.validate_python(raw)
    except ValidationError as exc:
        raise InvalidInput(
            "fragment id must be 1-128 of a-z 0-9 _ . - starting with a letter or digit"
        ) from exc


def read_body(req: falcon.Request) -> bytes:
    """The body, at most ``Content-Length`` bytes (`BodyLimits` has checked the length)."""
    return req.bounded_stream.read()


class Liveness:
    """``GET /healthz``: the process answers. Says nothing about dependencies."""

    policy = PUBLIC

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/health+json"
        resp.media = {"status": "pass"}


class RenderedViews:
    """The JSON body of each view object answered, kept while that object lives.

    An idle session answers every read with the one immutable `UserState` it published
    (`actors.Snapshot`) until the user changes, so its body is rendered once rather than per
    request. Entries are keyed by identity, checked through a weak reference (a new object
    never gets an old body), and leave when their view is collected. Thread-safe: plain dict
    operations, each atomic.
    """

    def __init__(self) -> None:
        self._bodies: dict[int, tuple[weakref.ref[Any], bytes]] = {}

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, view: object) -> bytes | None:
        entry = self._bodies.get(id(view))
        if entry is not None and entry[0]() is view:
            return entry[1]
        return None

    def put(self, view: object, body: bytes) -> None:
        key = id(view)
        bodies = self._bodies
        # The callback runs when the view dies, before its id can be reused.
        bodies[key] = (weakref.ref(view, lambda _dead: bodies.pop(key, None)), body)

    def state_body(self, state: UserState) -> bytes:
        """The JSON body answering ``GET /user/{id}/state`` with ``state``, rendered once."""
        body = self.get(state)
        if body is None:
            media = UserStateResponse.of(state).model_dump(mode="json")
            body = _JSON.serialize(media, falcon.MEDIA_JSON)
            self.put(state, body)
        return body


#: The state route's template: the app routes it, `yabot.api.snapshot_reads` labels its
#: metrics with it.
STATE_ROUTE = "/user/{user_id}/state"


class UserStateResource:
    """``GET /user/{user_id}/state``: the user's merged state (`GetState`)."""

    policy = requires(GET="users:read")

    def __init__(self, bridge: ApiBridge, rendered: RenderedViews | None = None) -> None:
        self._bridge = bridge
        self.rendered = rendered or RenderedViews()

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        state = self._bridge.user_state(parse_user_id(user_id))
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.rendered.state_body(state)


class PreferencesResource:
    """``PUT /user/{user_id}/preferences``: replace all of the user's preferences
    (`SetPreferences`); answers the preferences now in force."""

    policy = requires(PUT="users:write")

    def __init__(self, bridge: ApiBridge) -> None:
        self._bridge = bridge

    def on_put(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        uid = parse_user_id(user_id)
        body = parse_body(PreferencesBody, read_body(req))
        preferences = Preferences(language=body.language, notifications=body.notifications)
        state = self._bridge.ask(uid, SetPreferences(preferences=preferences))
        resp.media = PreferencesResponse.of(state.preferences).model_dump(mode="json")


class FragmentResource:
    """``GET /narrative/{fragment_id}?user_id=``: the fragment as that user sees it
    (`ShowFragment`); a VIP fragment for a user without VIP is 403 ``vip-required``."""

    policy = requires(GET="narrative:read")

    def __init__(self, bridge: ApiBridge) -> None:
        self._bridge = bridge

    def on_get(self, req: falcon.Request, resp: falcon.Response, fragment_id: str) -> None:
        fragment = parse_fragment_id(fragment_id)
        uid = parse_user_id(req.get_param("user_id"), "query parameter user_id")
        view = self._bridge.ask(uid, ShowFragment(fragment_id=fragment))
        resp.media = FragmentResponse.of(view).model_dump(mode="json")


class BesitosResource:
    """``POST /user/{user_id}/besitos``: earn, spend or transfer (`Transact`) under the
    request's ``Idempotency-Key``. Repeating a request with its key changes nothing and
    answers ``applied: false``; the same key with a different body is 409.

    ``GET /user/{user_id}/besitos?limit=&cursor=``: the ledger history, newest first, one
    page per request (`GetLedger`, `yabot.domain.ledger_pages`)."""

    policy = requires(GET="users:read", POST="besitos:write")

    def __init__(self, bridge: ApiBridge) -> None:
        self._bridge = bridge

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        uid = parse_user_id(user_id)
        # Blank values are kept: ``?cursor=`` is a malformed cursor, not "no cursor".
        query = falcon.uri.parse_query_string(req.query_string, keep_blank=True)
        limit = parse_limit(single(query.get("limit")))
        cursor = single(query.get("cursor"))
        if cursor is not None and not well_formed_cursor(cursor):
            raise InvalidInput(f"cursor must be 1-{MAX_CURSOR_LENGTH} of A-Z a-z 0-9 _ -, as "
                               "a previous page's next_cursor")
        page = self._bridge.ask(uid, GetLedger(limit=limit, cursor=cursor))
        resp.media = LedgerPageResponse.of(page).model_dump(mode="json")

    def on_post(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        uid = parse_user_id(user_id)
        key = idempotency_key(req)
        body = parse_body(TransactionBody, read_body(req)).root
        result = self._bridge.ask(uid, Transact(
            kind=body.kind, amount=body.amount, idempotency_key=key,
            to_user_id=body.to_user_id if isinstance(body, Transfer) else None,
            reason=body.reason,
        ))
        resp.media = TransactionResponse.of(result).model_dump(mode="json")


class SubscriptionResource:
    """``GET /user/{user_id}/subscription`` (`GetSubscription`) and ``PUT`` to start or cancel
    a plan (`ChangeSubscription`)."""

    policy = requires(GET="users:read", PUT="subscriptions:write")

    def __init__(self, bridge: ApiBridge) -> None:
        self._bridge = bridge

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        view = self._bridge.ask(parse_user_id(user_id), GetSubscription())
        resp.media = SubscriptionResponse.of(view).model_dump(mode="json")

    def on_put(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        uid = parse_user_id(user_id)
        body = parse_body(SubscriptionBody, read_body(req)).root
        view = self._bridge.ask(
            uid, ChangeSubscription(plan=Plan(body.plan), status=body.status, ends_at=body.ends_at)
        )
        resp.media = SubscriptionResponse.of(view).model_dump(mode="json")


def parse_limit(raw: str | None) -> int:
    """A page size from ``?limit=`` (`DEFAULT_LEDGER_PAGE` when absent), or `InvalidInput`."""
    if raw is None:
        return DEFAULT_LEDGER_PAGE
    if not _LIMIT.match(raw) or int(raw) > MAX_LEDGER_PAGE:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LEDGER_PAGE}")
    return int(raw)


def idempotency_key(req: falcon.Request) -> str:
    """The request's ``Idempotency-Key``, or `InvalidInput`."""
    key = req.get_header(IDEMPOTENCY_KEY)
    if key is None or not _IDEMPOTENCY_KEY.match(key):
        raise InvalidInput(
            f"the {IDEMPOTENCY_KEY} header is required: 1-128 visible ASCII characters"
        )
    return key


class UserResource:
    """``PUT /user/{user_id}``: provision a user without Telegram (`Start`, as the bot's
    /start does): 201 with the state when created, 200 with the state as it is when the user
    existed (idempotent; an existing profile is not changed — Telegram's updates do that)."""

    policy = requires(PUT="users:write")

    def __init__(self, bridge: ApiBridge) -> None:
        self._bridge = bridge

    def on_put(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        uid = parse_user_id(user_id)
        body = parse_body(ProvisionBody, read_body(req))
        welcome = self._bridge.ask(uid, Start(identity=TelegramIdentity(
            user_id=uid, first_name=body.first_name, username=body.username,
            language_code=body.language_code)))
        resp.status = falcon.HTTP_201 if welcome.created else falcon.HTTP_200
        resp.media = UserStateResponse.of(welcome.state).model_dump(mode="json")


class PurchasesResource:
    """``POST /user/{user_id}/purchases``: buy an item with besitos (`BuyItem`), once per
    ``Idempotency-Key``."""

    policy = requires(POST="besitos:write")

    def __init__(self, bridge: ApiBridge) -> None:
        self._bridge = bridge

    def on_post(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        uid = parse_user_id(user_id)
        key = idempotency_key(req)
        body = parse_body(PurchaseBody, read_body(req))
        purchase = self._bridge.ask(uid, BuyItem(sku=body.sku, idempotency_key=key))
        resp.media = PurchaseResponse.of(purchase).model_dump(mode="json")


class GiftsResource:
    """``POST /user/{user_id}/gifts``: buy an item for another user (`GiftItem`, the
    coordinator's workflow), once per ``Idempotency-Key``."""

    policy = requires(POST="besitos:write")

    def __init__(self, bridge: ApiBridge) -> None:
        self._bridge = bridge

    def on_post(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        uid = parse_user_id(user_id)
        key = idempotency_key(req)
        body = parse_body(GiftBody, read_body(req))
        gift = self._bridge.ask(uid, GiftItem(sku=body.sku, to_user_id=body.to_user_id,
                                              idempotency_key=key))
        resp.media = GiftResponse.of(gift).model_dump(mode="json")
