"""``POST /telegram/webhook``: Telegram's updates into the bot's loop, checked at the door.

Order of checks: the body's framing and size, by the API's `BodyLimits` like every route
(chunked without a length → 411; over ``BOT_WEBHOOK_MAX_BODY`` → 413, never read; not JSON
→ 415), then the secret header (constant-time compare; wrong or missing → 401), then JSON
(→ 400, also for nesting too deep to decode) and the update's shape (no integer
``update_id`` → 400). A valid update is appended to its partition's intake (`yabot.intake`)
and answered 200 once the intake has stored it durably — never before, since Telegram does
not resend an update it got a 2xx for; the reply to the user goes out through the Bot API
when the update's partition owner has handled it.

Status choices, knowing that Telegram retries any update it could not deliver with a 2xx: an
update of a kind the bot does not handle, or one aiogram's models refuse (a field from a newer
or older Bot API), is answered 200, logged once at warning and counted (retrying it could never
help); a full queue, a stopping bot or an intake that cannot store the update answers 503
with ``Retry-After`` (retrying later will work).
"""

from __future__ import annotations

import hmac
import json
from typing import Any, ClassVar, Protocol

import falcon
import structlog

from yabot.api.openapi import Operations, problem_response
from yabot.api.policy import PUBLIC
from yabot.bot.accepted import Accepted
from yabot.errors import InvalidInput, Unauthorized, Unavailable

log = structlog.get_logger("yabot.bot")

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)


class UpdateIntake(Protocol):
    """What the route hands updates to: the `BotRunner` (or `BotStart` while it starts)."""

    def parse(self, data: object) -> Any: ...

    def accept(self, update: Any, raw: str | None = None) -> Accepted: ...


class TelegramWebhook:
    """The Falcon resource. Public (no JWT): the secret header is its authentication."""

    policy = PUBLIC
    #: Its entry in ``/openapi.json`` (`yabot.api.openapi.extra_path_items`).
    openapi: ClassVar[Operations] = {"post": {
        "summary": "A Telegram update (Bot API setWebhook), authenticated by the secret header",
        "security": [],
        "parameters": [{
            "name": SECRET_HEADER, "in": "header", "required": True,
            "description": "The secret_token given to setWebhook",
            "schema": {"type": "string", "minLength": 1, "maxLength": 256,
                       "pattern": "^[A-Za-z0-9_-]+$"},
        }],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["update_id"],
            "description": "A Telegram Update object (https://core.telegram.org/bots/api#update)",
        }}}},
        "responses": {
            "200": {"description": "Accepted, or of a kind the bot does not handle, or an "
                                   "update that cannot be modelled (all final: Telegram "
                                   "does not retry)",
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["ok"],
                        "properties": {"ok": {"const": True}}}}}},
            "400": problem_response(400, "The body is not JSON or has no integer update_id"),
            "401": problem_response(401, "The secret header is missing or wrong"),
            "411": problem_response(411),
            "413": problem_response(413, "The body is larger than BOT_WEBHOOK_MAX_BODY"),
            "415": problem_response(415),
            "503": problem_response(503, "The bot's queue is full, the bot is stopping or the "
                                         "intake cannot store the update; Telegram "
                                         "retries later"),
        },
    }}

    def __init__(self, runner: UpdateIntake, secret: str, max_body: int) -> None:
        self._runner = runner
        self._secret = secret.encode()
        self.max_body_bytes = max_body  # `yabot.api.bodies.BodyLimits` enforces it (411, 413)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(SECRET_HEADER) or ""
        if not hmac.compare_digest(given.encode(), self._secret):
            raise Unauthorized("missing or wrong secret token")
        length = req.content_length
        if not length:
            raise InvalidInput("an update is required")
        body = req.bounded_stream.read(length)
        try:
            raw = body.decode()
            data = json.loads(raw)
        except (ValueError, RecursionError):  # also UnicodeDecodeError; nesting too deep
            raise InvalidInput("the body is not JSON this server can read") from None
        update = self._runner.parse(data)
        if update is None:  # an update aiogram's models refuse: logged, counted, final
            resp.media = {"ok": True}
            return
        outcome = self._runner.accept(update, raw)
        if outcome in (Accepted.BUSY, Accepted.STOPPED, Accepted.UNSTORED):
            log.warning("webhook update refused", update_id=update.update_id,
                        reason=outcome.value)
            raise Unavailable("the bot cannot take updates right now")  # 503, Retry-After
        resp.status = falcon.HTTP_200
        resp.media = {"ok": True}
