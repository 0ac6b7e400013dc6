"""BotRunner: aiogram's Dispatcher on its own asyncio loop thread, fed by webhook or polling.

Mode is chosen by settings: with ``BOT_WEBHOOK_URL`` the runner registers the webhook
(`setWebhook` with the secret and the allowed updates) and the Falcon route hands each update
over with `accept`; without it, it deletes any webhook and long-polls `getUpdates`. Either
way, when Telegram cannot be reached it logs one line per failed attempt and retries with
growing delays, forever: the HTTP API keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError

from actors import KeyedActors
from yabot.bot.accepted import Accepted
from yabot.bot.audience import Audience
from yabot.bot.counters import telegram_counters
from yabot.bot.decoding import RawGetUpdates, decode_batch, decode_update, update_id_of
from yabot.bot.flood import RetryAfter
from yabot.bot.handle import LanguageCache
from yabot.bot.lanes import Lanes
from yabot.bot.middleware import ActionFlag, UpdateContext
from yabot.bot.routers import all_routers
from yabot.errors import InvalidInput
from yabot.settings import Settings
from yabot.stores.retry import RetryPolicy

log = structlog.get_logger("yabot.bot")

T = TypeVar("T")

#: Update kinds the bot handles; `setWebhook`/`getUpdates` ask Telegram for exactly these
#: (``message_reaction`` is only sent when listed, and only to chat administrators).
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "message_reaction",
                   "my_chat_member", "pre_checkout_query"]

START_TIMEOUT = 10.0
GET_UPDATES_LIMIT = 100  # the most getUpdates returns at once


def build_dispatcher(
    sessions: KeyedActors[int, Any], settings: Settings, languages: LanguageCache | None = None
) -> Dispatcher:
    """The Dispatcher with every router and the middleware that gives handlers ``user``."""
    languages = languages or LanguageCache(settings.bot.bot_language_ttl)
    dispatcher = Dispatcher()
    dispatcher.update.outer_middleware(
        UpdateContext(sessions, settings.actors.ask_timeout, languages)
    )
    audience = Audience()
    dispatcher.message.outer_middleware(audience)
    dispatcher.callback_query.outer_middleware(audience)
    for observer in (dispatcher.message, dispatcher.callback_query,
                     dispatcher.message_reaction, dispatcher.my_chat_member):
        observer.middleware(ActionFlag())
    for router in all_routers(settings.bot.bot_operators):
        dispatcher.include_router(router)
    return dispatcher


def build_bot(settings: Settings) -> Bot:
    """aiogram's real client against ``TELEGRAM_API_URL``, with 429 handling."""
    token = settings.bot.telegram_bot_token
    if token is None:
        raise ValueError("a Telegram bot needs TELEGRAM_BOT_TOKEN")
    api = TelegramAPIServer.from_base(str(settings.bot.telegram_api_url).rstrip("/"))
    bot = Bot(token.get_secret_value(), session=AiohttpSession(api=api))
    bot.session.middleware(RetryAfter(settings.bot.bot_flood_retries))
    return bot


def lane_key(update: Update) -> int | None:
    """Whose lane an update runs in: the sender's, else the chat's, else none."""
    context = UserContextMiddleware.resolve_event_context(update)
    if context.user is not None:
        return context.user.id
    return context.chat.id if context.chat is not None else None


class BotRunner:
    """Owns the Telegram side: a thread running an asyncio loop with the Dispatcher in it.

    `start` returns once the loop runs (connecting to Telegram goes on in the background).
    Updates of one user are handled one at a time in arrival order (`Lanes`). `stop` stops
    taking updates, waits up to ``BOT_DRAIN_TIMEOUT`` for those in flight, closes the HTTP
    session and joins the thread.
    """

    def __init__(self, settings: Settings, dispatcher: Dispatcher, bot: Bot | None = None) -> None:
        self._settings = settings
        self._dispatcher = dispatcher
        self.bot = bot or build_bot(settings)
        self.webhook = settings.bot.bot_webhook_url is not None
        self._thread = threading.Thread(target=self._run, name="telegram", daemon=False)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._lanes: Lanes[Update] | None = None
        self._pending = 0
        self._pending_lock = threading.Lock()
        #: Set whenever an update is done: polling waits on it while the queue is full.
        self._room: asyncio.Event | None = None
        self._backoff = RetryPolicy(base_delay=settings.bot.bot_retry_initial_delay,
                                    max_delay=settings.bot.bot_retry_max_delay)
        #: Set once Telegram acknowledged setWebhook / deleteWebhook (for tests and health).
        self.connected = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the telegram loop thread did not start")

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopping.set)
        self._thread.join(self._settings.bot.bot_drain_timeout + START_TIMEOUT)
        if self._thread.is_alive():
            log.error("telegram thread did not stop in time")

    def run_on_loop(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coroutine`` (a call on `bot`) on the bot's event loop, from any thread (the
        notifications sender); `RuntimeError` when the loop does not run."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coroutine.close()
            raise RuntimeError("the telegram loop is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    # -- webhook hand-off (called on HTTP threads) -----------------------------------------

    def parse(self, data: object) -> Update | None:
        """The update in ``data`` (decoded JSON); None for an update aiogram's models refuse
        (logged and counted: Telegram would only send it again); `InvalidInput` for something
        that is not an update at all (not an object, no integer ``update_id``)."""
        if not isinstance(data, dict) or update_id_of(data) is None:
            raise InvalidInput("an update is a JSON object with an integer update_id")
        return decode_update(data, self.bot)

    def accept(self, update: Update) -> Accepted:
        """Hand ``update`` to the loop without waiting for it to be handled."""
        if not handled_kind(update):
            return Accepted.IGNORED
        loop, lanes = self._loop, self._lanes
        if loop is None or lanes is None or loop.is_closed() or self._is_stopping():
            return Accepted.STOPPED
        with self._pending_lock:
            if self._pending >= self._settings.bot.bot_max_pending_updates:
                return Accepted.BUSY
            self._pending += 1
        try:
            # call_soon_threadsafe keeps arrival order (callbacks run FIFO), which the lanes
            # need; run_coroutine_threadsafe would too, but adds a task and a future per update.
            loop.call_soon_threadsafe(lanes.submit, lane_key(update), update)
        except RuntimeError:  # the loop closed between the check and the call
            self._done()
            return Accepted.STOPPED
        return Accepted.QUEUED

    @property
    def pending(self) -> int:
        """Updates taken (webhook or polling) and not yet handled."""
        with self._pending_lock:
            return self._pending

    def _is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    def _done(self) -> None:
        with self._pending_lock:
            self._pending -= 1
        loop, room = self._loop, self._room
        if loop is not None and room is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(room.set)

    # -- the loop thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            log.exception("telegram loop failed")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        self._lanes = Lanes(self._handle, self._settings.bot.bot_max_concurrent_updates)
        api = str(self._settings.bot.telegram_api_url)
        # Logged before `start` returns, so the log shows the bot starting before the HTTP app.
        log.info("telegram starting", mode="webhook" if self.webhook else "polling", api=api)
        self._ready.set()
        connection = asyncio.create_task(
            self._register_webhook() if self.webhook else self._poll()
        )
        await self._stopping.wait()
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)
        drained = await self._lanes.drain(self._settings.bot.bot_drain_timeout)
        if not drained:
            log.error("telegram updates still running at shutdown", pending=len(self._lanes))
        await self.bot.session.close()
        log.info("telegram stopped")

    async def _handle(self, update: Update) -> None:
        try:
            await self._dispatcher.feed_update(self.bot, update)
        finally:
            self._done()

    async def _retrying(self, what: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """``await attempt_once()`` until it succeeds; one log line per failure, then wait."""
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                delay = max(self._backoff.base_delay / 2, self._backoff.delay(attempt))
                log.warning("telegram unreachable; retrying", call=what, attempt=attempt,
                            retry_in=round(delay, 2), error=type(exc).__name__,
                            detail=str(exc)[:200])
                await asyncio.sleep(delay)

    async def _register_webhook(self) -> None:
        url = self._settings.bot.bot_webhook_url
        secret = self._settings.bot.bot_webhook_secret
        assert url is not None  # BotSettings requires the secret with the URL
        assert secret is not None
        await self._retrying("setWebhook", lambda: self.bot.set_webhook(
            url=str(url), secret_token=secret.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES,
            max_connections=self._settings.bot.bot_webhook_max_connections,
        ))
        self.connected.set()
        log.info("telegram webhook registered", url=str(url))

    def _get_updates_call(self, offset: int | None, limit: int
                          ) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
        timeout = self._settings.bot.bot_polling_timeout
        request = RawGetUpdates(offset=offset, limit=limit, timeout=timeout,
                                allowed_updates=ALLOWED_UPDATES)
        return lambda: self.bot(request, request_timeout=int(self.bot.session.timeout + timeout))

    async def _poll(self) -> None:
        await self._retrying("deleteWebhook",
                             lambda: self.bot.delete_webhook(drop_pending_updates=False))
        self.connected.set()
        log.info("telegram polling started")
        offset: int | None = None
        while True:
            room = await self._room_for_updates()
            raws = await self._retrying("getUpdates", self._get_updates_call(offset, room))
            # Decoded one by one: an update aiogram's models refuse is skipped, and the
            # offset still moves past it (or polling would fetch it again forever).
            updates, next_offset = decode_batch(raws, self.bot)
            offset = next_offset if next_offset is not None else offset
            for update in updates:
                self._submit_polled(update)

    async def _room_for_updates(self) -> int:
        """How many updates to fetch next (at most 100, Telegram's limit); waits while
        ``BOT_MAX_PENDING_UPDATES`` are pending, as the webhook answers 503 then."""
        room = self._room
        assert room is not None
        while True:
            room.clear()
            with self._pending_lock:
                free = self._settings.bot.bot_max_pending_updates - self._pending
            if free > 0:
                return min(free, GET_UPDATES_LIMIT)
            await room.wait()

    def _submit_polled(self, update: Update) -> None:
        lanes = self._lanes
        assert lanes is not None
        if not handled_kind(update):
            return
        with self._pending_lock:
            self._pending += 1
        lanes.submit(lane_key(update), update)


def handled_kind(update: Update) -> bool:
    """Whether ``update`` is of a kind the bot handles; the others are logged and counted
    (a kind aiogram does not know at warning, a known one not asked for at info)."""
    try:
        kind = update.event_type
    except UpdateTypeLookupError:
        extra = update.model_extra or {}
        log.warning("update of an unknown kind skipped", update_id=update.update_id,
                    kind=next(iter(extra), "?")[:64])
        telegram_counters.incr("unknown_kind")
        return False
    if kind not in ALLOWED_UPDATES:  # Telegram sends only these, unless a setting is stale
        log.info("update kind not handled", update_id=update.update_id, kind=kind)
        telegram_counters.incr("not_handled")
        return False
    return True
