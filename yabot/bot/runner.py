"""BotRunner: aiogram's Dispatcher on its own asyncio loop thread, fed by webhook or polling.

Mode is chosen by settings: with ``BOT_WEBHOOK_URL`` the runner registers the webhook
(`setWebhook` with the secret and the allowed updates) and the Falcon route hands each update
over with `accept`; without it, it deletes any webhook and long-polls `getUpdates`. Either
way, when Telegram cannot be reached it logs one line per failed attempt and retries with
growing delays, forever: the HTTP API keeps serving meanwhile.

Every update goes through the durable intake (`yabot.intake`): `accept` (webhook) and the
polling loop append it to its partition's log first — the webhook answers 200, the polling
offset moves on, only after that — and an `IntakeReader` hands the log's entries of the
partitions this process owns to the lanes. An entry is acknowledged once the Dispatcher has
handled it; one a crash interrupted is handled again after the restart, and an update the
user's session already recorded as handled is skipped (`SeenUpdate`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
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
from yabot.intake import Delivery, Intake, IntakeEntry, IntakeReader, partition_of
from yabot.settings import Settings
from yabot.stores.retry import RetryPolicy

log = structlog.get_logger("yabot.bot")

T = TypeVar("T")

#: Whether user ``user_id``'s update ``update_id`` was handled before (the user's session
#: answers `SeenUpdate`).
Seen = Callable[[int, int], Awaitable[bool]]

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
    languages = languages or LanguageCache(settings.bot.language_ttl)
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
    for router in all_routers(settings.bot.operators):
        dispatcher.include_router(router)
    return dispatcher


def build_bot(settings: Settings) -> Bot:
    """aiogram's real client against ``TELEGRAM_API_URL``, with 429 handling."""
    token = settings.bot.token
    if token is None:
        raise ValueError("a Telegram bot needs TELEGRAM_BOT_TOKEN")
    api = TelegramAPIServer.from_base(str(settings.bot.api_url).rstrip("/"))
    bot = Bot(token.get_secret_value(), session=AiohttpSession(api=api))
    bot.session.middleware(RetryAfter(settings.bot.flood_retries))
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

    def __init__(self, settings: Settings, dispatcher: Dispatcher, intake: Intake,
                 bot: Bot | None = None,
                 owned: Callable[[], list[int]] | None = None,
                 owns: Callable[[int], bool] | None = None,
                 seen: Seen | None = None) -> None:
        self._settings = settings
        self._dispatcher = dispatcher
        self._intake = intake
        self._partitions = settings.scale.partitions
        every = list(range(self._partitions))
        #: The partitions whose entries this process handles (all of them with no leases).
        self._owned = owned or (lambda: every)
        self._owns = owns or (lambda partition: True)
        self._busy: dict[int, int] = {}
        self.reader: IntakeReader | None = None
        self._seen = seen
        #: Updates skipped because the user's session had handled them already.
        self.redeliveries_skipped = 0
        self.bot = bot or build_bot(settings)
        self.webhook = settings.bot.webhook_url is not None
        self._thread = threading.Thread(target=self._run, name="telegram", daemon=False)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._lanes: Lanes[Delivery] | None = None
        self._pending = 0
        self._pending_lock = threading.Lock()
        #: Set whenever an update is done: polling waits on it while the queue is full.
        self._room: asyncio.Event | None = None
        self._backoff = RetryPolicy(base_delay=settings.bot.retry_initial_delay,
                                    max_delay=settings.bot.retry_max_delay)
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
        self._thread.join(self._settings.bot.drain_timeout + START_TIMEOUT)
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

    def accept(self, update: Update, raw: str | None = None) -> Accepted:
        """Store ``update`` (``raw``: its JSON as received) in the intake; QUEUED means it is
        stored durably and will be handled, without waiting for that."""
        if not handled_kind(update):
            return Accepted.IGNORED
        loop, lanes = self._loop, self._lanes
        if loop is None or lanes is None or loop.is_closed() or self._is_stopping():
            return Accepted.STOPPED
        with self._pending_lock:
            if self._pending >= self._settings.bot.max_pending_updates:
                return Accepted.BUSY
            self._pending += 1
        try:
            self._intake.append([self._entry(update, raw)])
        except Exception as exc:
            self._done()
            log.warning("update not stored in the intake", update_id=update.update_id,
                        error=type(exc).__name__)
            return Accepted.UNSTORED
        return Accepted.QUEUED

    def _entry(self, update: Update, raw: str | None) -> IntakeEntry:
        key = lane_key(update)
        return IntakeEntry(partition=partition_of(key, self._partitions), key=key,
                           body=raw if raw is not None else _raw(update))

    @property
    def intake(self) -> Intake:
        """The durable log this runner appends updates to."""
        return self._intake

    @property
    def pending(self) -> int:
        """Updates taken (webhook or polling) and not yet handled."""
        with self._pending_lock:
            return self._pending

    def _is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    def _done(self) -> None:
        with self._pending_lock:
            # Entries resumed after a restart were not counted by this process's `accept`.
            self._pending = max(0, self._pending - 1)
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
        self._lanes = Lanes(self._handle, self._settings.bot.max_concurrent_updates)
        loop, lanes = self._loop, self._lanes
        scale = self._settings.scale

        def deliver(delivery: Delivery) -> None:  # on the reader's thread, in log order
            loop.call_soon_threadsafe(lanes.submit, delivery.entry.key, delivery)

        reader = self.reader = IntakeReader(
            self._intake, self._owned, deliver, read_count=scale.intake_read_count,
            read_block=scale.intake_read_block_ms / 1000,
            max_in_flight=scale.intake_max_in_flight,
            # Longer than any lease could still be valid for a previous reader.
            stale_after=scale.lease_ttl * 2,
        )
        reader.start()
        api = str(self._settings.bot.api_url)
        # Logged before `start` returns, so the log shows the bot starting before the HTTP app.
        log.info("telegram starting", mode="webhook" if self.webhook else "polling", api=api)
        self._ready.set()
        connection = asyncio.create_task(
            self._register_webhook() if self.webhook else self._poll()
        )
        await self._stopping.wait()
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)
        # No new entries from here; what is handed out finishes, the rest stays in the log.
        await asyncio.to_thread(reader.stop_reading)
        drained = await self._lanes.drain(self._settings.bot.drain_timeout)
        if not drained:
            log.error("telegram updates still running at shutdown", pending=len(self._lanes))
        await asyncio.to_thread(reader.stop)
        self._intake.close()
        await self.bot.session.close()
        log.info("telegram stopped")

    async def _handle(self, delivery: Delivery) -> None:
        partition = delivery.entry.partition
        reader = self.reader
        assert reader is not None  # deliveries come from it
        if not self._owns(partition):
            # The partition moved (or is being given back) since the entry was read: it stays
            # pending in the log for the next owner, who claims it.
            reader.abandon(delivery)
            self._done()
            return
        self._busy[partition] = self._busy.get(partition, 0) + 1
        try:
            update = self._decoded(delivery)
            if update is None:
                return
            if await self._handled_before(update):
                self.redeliveries_skipped += 1
                log.info("redelivered update skipped: handled before",
                         update_id=update.update_id)
                return
            await self._dispatcher.feed_update(self.bot, update)
        finally:
            self._busy[partition] -= 1
            reader.done(delivery)
            self._done()

    def _decoded(self, delivery: Delivery) -> Update | None:
        """The entry's update; None (logged) for one that can never be handled: stored by an
        older version or tampered with (not JSON), or one aiogram's models refuse."""
        try:
            raw = json.loads(delivery.entry.body)
        except (ValueError, RecursionError):
            raw = None
        if not isinstance(raw, dict) or update_id_of(raw) is None:
            log.error("intake entry is not an update; dropped", entry_id=delivery.entry_id)
            telegram_counters.incr("unparseable")
            return None
        return decode_update(raw, self.bot)

    def busy(self, partition: int) -> int:
        """Entries of ``partition`` being handled right now, plus one while the reader is
        reading it (any thread may ask): a lease given back waits for both."""
        reader = self.reader
        reading = reader is not None and reader.reading(partition)
        return self._busy.get(partition, 0) + int(reading)

    async def _handled_before(self, update: Update) -> bool:
        """The sender's session says so; an update it cannot answer for is handled."""
        seen = self._seen
        sender = UserContextMiddleware.resolve_event_context(update).user
        if seen is None or sender is None or sender.is_bot:
            return False
        try:
            return await seen(sender.id, update.update_id)
        except Exception as exc:
            log.warning("handled updates not checked; handling the update",
                        update_id=update.update_id, error=type(exc).__name__)
            return False

    async def _retrying(self, what: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """``await attempt_once()`` until it succeeds; one log line per failure, then wait."""
        # Not `retry_call`: asynchronous and never giving up (Telegram is waited for until the
        # bot stops), with `RetryPolicy`'s delays.
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
        url = self._settings.bot.webhook_url
        secret = self._settings.bot.webhook_secret
        assert url is not None  # BotSettings requires the secret with the URL
        assert secret is not None
        await self._retrying("setWebhook", lambda: self.bot.set_webhook(
            url=str(url), secret_token=secret.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES,
            max_connections=self._settings.bot.webhook_max_connections,
        ))
        self.connected.set()
        log.info("telegram webhook registered", url=str(url))

    def _get_updates_call(self, offset: int | None, limit: int
                          ) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
        timeout = self._settings.bot.polling_timeout
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
            entries = self._polled_entries(raws, updates)
            # Stored before the next getUpdates confirms them to Telegram (the offset).
            await self._retrying("intake append", partial(asyncio.to_thread,
                                                          self._intake.append, entries))
            offset = next_offset if next_offset is not None else offset

    async def _room_for_updates(self) -> int:
        """How many updates to fetch next (at most 100, Telegram's limit); waits while
        ``BOT_MAX_PENDING_UPDATES`` are pending, as the webhook answers 503 then."""
        room = self._room
        assert room is not None
        while True:
            room.clear()
            with self._pending_lock:
                free = self._settings.bot.max_pending_updates - self._pending
            if free > 0:
                return min(free, GET_UPDATES_LIMIT)
            await room.wait()

    def _polled_entries(self, raws: list[dict[str, Any]], updates: list[Update]
                        ) -> list[IntakeEntry]:
        """The intake entries of the polled updates the bot handles (each stored as Telegram
        sent it), counted as pending when this process handles them itself: the next
        `getUpdates` waits for room as the webhook answers 503."""
        sent = {update_id_of(raw): raw for raw in raws}
        entries: list[IntakeEntry] = []
        for update in updates:
            if not handled_kind(update):
                continue
            entry = self._entry(update, json.dumps(sent[update.update_id]))
            entries.append(entry)
            if self._owns(entry.partition):
                with self._pending_lock:
                    self._pending += 1
        return entries


def _raw(update: Update) -> str:
    """The update's JSON as the intake stores it (for updates that came without raw text)."""
    return update.model_dump_json(exclude_none=True)


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
