"""``POST /telegram/webhook``: Telegram's updates into the bot's loop, checked at the door.

Order of checks: the secret header (constant-time compare; wrong or missing → 401), then the
body's size (chunked without a length → 411; over ``BOT_WEBHOOK_MAX_BODY`` → 413, never read),
then JSON (→ 400) and the update's shape (→ 400). A valid update is handed to the Dispatcher's
loop and answered 200 at once; the reply to the user goes out through the Bot API.

Status choices, knowing that Telegram retries any update it could not deliver with a 2xx: an
update of a kind the bot does not handle is answered 200 (retrying it could never help);
a full queue or a stopping bot answers 503 with ``Retry-After`` (retrying later will work).
"""

from __future__ import annotations

import hmac
import json

import falcon
import structlog

from yabot.api.problems import Problem
from yabot.bot.runner import Accepted, BotRunner
from yabot.errors import InvalidInput, LengthRequired, Unauthorized

log = structlog.get_logger("yabot.bot")

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
RETRY_AFTER_SECONDS = "1"


class TelegramWebhook:
    """The Falcon resource. Public (no JWT): the secret header is its authentication."""

    public = True

    def __init__(self, runner: BotRunner, secret: str, max_body: int) -> None:
        self._runner = runner
        self._secret = secret.encode()
        self._max_body = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(SECRET_HEADER) or ""
        if not hmac.compare_digest(given.encode(), self._secret):
            raise Unauthorized("missing or wrong secret token")
        length = req.content_length
        if length is None:
            if req.get_header("Transfer-Encoding"):
                raise Problem(falcon.HTTP_411, "Length Required", LengthRequired.code,
                              "send the update with a Content-Length")
            raise InvalidInput("an update is required")
        if length > self._max_body:
            raise Problem(falcon.HTTP_413, "Payload Too Large", "payload-too-large",
                          f"an update is at most {self._max_body} bytes")
        try:
            data = json.loads(req.bounded_stream.read(length))
        except ValueError:  # also UnicodeDecodeError
            raise InvalidInput("the body is not JSON") from None
        update = self._runner.parse(data)
        outcome = self._runner.accept(update)
        if outcome in (Accepted.BUSY, Accepted.STOPPED):
            log.warning("webhook update refused", update_id=update.update_id,
                        reason=outcome.value)
            resp.set_header("Retry-After", RETRY_AFTER_SECONDS)
            raise Problem(falcon.HTTP_503, "Service Unavailable", "unavailable",
                          "the bot cannot take updates right now")
        resp.status = falcon.HTTP_200
        resp.media = {"ok": True}
