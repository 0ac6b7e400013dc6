"""Dispatcher middleware: who the update is from, what to log it under, what to do on error.

`UpdateContext` wraps every update (outer middleware on ``update``, after aiogram's own, so
``event_from_user`` is known): it binds the update id and a correlation id to every log line,
injects ``user`` (a `UserHandle` on the sender's session) and ``note`` into handlers, marks
the handler's changes to the sender as made for this update (`handling_update`: each is
stored with the update's id as handled, in its own write), turns an exception into one
friendly reply in the user's language, and afterwards tells the session to record the update
(`RecordUpdate` → `UpdateReceived` / `UserInteraction` with the session's gap-free ``seq``,
and the update's id as handled, in one write). Recording never breaks or delays the reply.
Updates from chats other than private ones are not recorded: a group's chatter is not its
members' interactions with the bot.

A sender the bot does not serve (another bot, the anonymous group admin, an id outside
1 to 2^53 - 1) reaches no handler that needs a user: its message is ignored, its button
press answered with "that button no longer works", its pre-checkout query declined.

Log levels say who must act: an error the user caused or can fix (a user who never sent
/start, a stale button, too few besitos) is one info line without a traceback; a dependency
that did not answer is a warning; anything else is an error with its traceback.

`ActionFlag` (inner middleware, runs once a handler is chosen) copies the handler's
``flags={"action": …}`` into the note.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import Chat, TelegramObject, Update, User

from actors import ActorError, KeyedActors
from yabot.bot.handle import LanguageCache, UpdateNote, UserHandle
from yabot.bot.texts import error_key, error_text, text
from yabot.domain.users import TelegramIdentity
from yabot.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    TimedOut,
    Unavailable,
)
from yabot.events.drafts import handling_update
from yabot.logs import bind_correlation_id
from yabot.sessions.messages import RecordUpdate

log = structlog.get_logger("yabot.bot")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

MAX_USER_ID = 2**53  # yabot.domain.users.UserId

#: Errors a user's own action explains (see the module docstring): info, no traceback.
USERS_OWN_ERRORS = (InvalidInput, NotFound, Forbidden, Conflict, RateLimited)
#: Errors of a dependency that did not answer in time: warning, no traceback.
DEPENDENCY_ERRORS = (Unavailable, TimedOut, ActorError, TimeoutError)


def identity_of(sender: User) -> TelegramIdentity:
    return TelegramIdentity(
        user_id=sender.id, first_name=sender.first_name, username=sender.username,
        language_code=sender.language_code,
    )


class UpdateContext(BaseMiddleware):
    """Per-update context, error replies and recording (see the module docstring)."""

    def __init__(
        self, sessions: KeyedActors[int, Any], ask_timeout: float, languages: LanguageCache
    ) -> None:
        self._sessions = sessions
        self._ask_timeout = ask_timeout
        self._languages = languages

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        structlog.contextvars.clear_contextvars()  # this update's task has its own context
        structlog.contextvars.bind_contextvars(update_id=event.update_id)
        bind_correlation_id()
        sender = data.get("event_from_user")
        user: UserHandle | None = None
        if isinstance(sender, User) and not sender.is_bot and 0 < sender.id < MAX_USER_ID:
            user = UserHandle(self._sessions, identity_of(sender), self._ask_timeout,
                              self._languages)
        note = UpdateNote()
        data["user"] = user
        data["note"] = note
        try:
            if user is None:
                if await _refused(event, sender):
                    return None
                return await handler(event, data)
            # Every change this update makes to its sender is stored with the update's id
            # as handled, in the change's own write: a redelivery is then skipped, never
            # applied a second time (`yabot.events.drafts.handling_update`).
            with handling_update(user.user_id, event.update_id):
                return await handler(event, data)
        except TelegramForbiddenError:
            # 403: the user blocked the bot (or left the chat). Telegram's advice: stop
            # sending to them; there is nobody to apologise to.
            log.info("reply not delivered: the bot is blocked by the user")
        except TelegramRetryAfter as exc:
            # Already waited out `BOT_FLOOD_RETRIES` times by the request middleware.
            log.warning("reply dropped: Telegram flood control persists",
                        retry_after=exc.retry_after)
        except USERS_OWN_ERRORS as exc:
            log.info("update refused", error_type=type(exc).__name__, error_key=error_key(exc))
            await _apologise(event, user, exc)
        except DEPENDENCY_ERRORS as exc:
            log.warning("update not handled: a dependency did not answer",
                        error_type=type(exc).__name__, error_key=error_key(exc),
                        detail=str(exc)[:200])
            await _apologise(event, user, exc)
        except Exception as exc:
            log.exception("update handling failed", error_type=type(exc).__name__,
                          error_key=error_key(exc))
            await _apologise(event, user, exc)
        finally:
            chat = data.get("event_chat")
            if user is not None and (not isinstance(chat, Chat) or chat.type == "private"):
                self._record(event, user, note)
        return None

    def _record(self, event: Update, user: UserHandle, note: UpdateNote) -> None:
        try:
            self._sessions.tell(user.user_id, RecordUpdate(
                update_id=event.update_id, update_kind=event.event_type, action=note.action,
                details=note.details,
            ))
        except Exception:
            log.warning("update not recorded", exc_info=True)


async def _refused(event: Update, sender: object) -> bool:
    """Deal with an update from a sender the bot does not serve, if it would need one;
    True when it was dealt with (no handler runs)."""
    why = ("no sender" if not isinstance(sender, User) else
           "a bot" if sender.is_bot else "an id out of range")
    if event.callback_query is not None:
        log.info("button pressed by a sender the bot does not serve", sender=why)
        await event.callback_query.answer(text("button_expired", "en"))
        return True
    if event.pre_checkout_query is not None:
        log.info("pre-checkout query from a sender the bot does not serve", sender=why)
        await event.pre_checkout_query.answer(ok=False, error_message=text("button_expired",
                                                                              "en"))
        return True
    if event.message is not None:
        if event.message.chat.type == "private":  # a group's other bots are not news
            log.info("message from a sender the bot does not serve ignored", sender=why)
        return True
    return False


async def _apologise(event: Update, user: UserHandle | None, error: Exception) -> None:
    """One friendly reply where the user will see it; never raises."""
    language = user.known_language() if user is not None else "en"
    message = error_text(error, language)
    try:
        if event.callback_query is not None:
            await event.callback_query.answer(message, show_alert=True)
        elif event.pre_checkout_query is not None:  # Telegram waits 10 s for an answer
            await event.pre_checkout_query.answer(ok=False, error_message=message)
        elif event.message is not None:
            await event.message.answer(message)
    except Exception:
        log.warning("error reply not delivered", exc_info=True)


class ActionFlag(BaseMiddleware):
    """Copies the chosen handler's ``action`` flag into the update's note."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        action = get_flag(data, "action")
        note = data.get("note")
        if isinstance(action, str) and isinstance(note, UpdateNote):
            note.action = action
        return await handler(event, data)
