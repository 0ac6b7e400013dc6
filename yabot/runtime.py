"""Runtime: the whole application in one process — the supervisor tree, then the bot.

Start order: stores → events → coordinator → sessions → bot (then the HTTP app, bound by
`yabot.serving`); stop order is the reverse, and stopping the bot drains the updates it is
handling. Used by the gunicorn worker (`yabot.serving`) and by the tests; `stop` must be called
(in a ``finally``), because actor threads are not daemons and would keep the process alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import pykka
import redis
import structlog
from pymongo import MongoClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from actors import (
    ActorError,
    ActorExit,
    Ask,
    ChildSpec,
    KeyedActors,
    Message,
    Supervisor,
    spawn,
)
from yabot import crashpoints
from yabot.bot.starting import BotStart
from yabot.bot.webhook import WEBHOOK_PATH, TelegramWebhook
from yabot.cluster import LocalOwnership, Ownership, RedisOwnership
from yabot.cluster.forwarding import AskForwarder, AskServer
from yabot.cluster.routing import AskRouter
from yabot.coordinator import Coordinator, CoordinatorClient
from yabot.coordinator.actor import Recovery
from yabot.domain.users import UserDocument
from yabot.errors import YabotError
from yabot.events.bus import Events
from yabot.events.drafts import Drafts
from yabot.events.groups import ConsumerGroup, Handlers
from yabot.events.local import LocalDelivery
from yabot.events.models import SubscriptionChanged
from yabot.events.stats import DailyFigures, daily_figures, stats_group
from yabot.events.supervisor import events_supervisor
from yabot.health import ComponentHealth, HealthRegistry, HealthStatus
from yabot.intake import partition_of
from yabot.intake.choice import build_intake, consumer_name
from yabot.notifications.group import NotificationRules, notifications_group
from yabot.notifications.sender import Notifier, Send, TokenBucket
from yabot.notifications.warning import warn_vip
from yabot.scheduler.actor import SchedulerActor
from yabot.scheduler.scheduler import JobHandlers
from yabot.scheduler.vip import VIP_EXPIRY, VIP_WARNING, expire_vip, vip_jobs
from yabot.seed import DEFAULT_SEED_PATH, seed_at_start
from yabot.services.payments import read_offers
from yabot.sessions.messages import GetSubscription, Relinquish, SeenUpdate
from yabot.sessions.renewal import ContextRenewal
from yabot.sessions.session import SessionServices, UserSession
from yabot.settings import Environment, Settings
from yabot.stores.actors import MongoClientFactory, stores_supervisor
from yabot.stores.handles import Stores

if TYPE_CHECKING:
    from yabot.bot.runner import BotRunner

log = structlog.get_logger("yabot.runtime")

ROOT_STOP_TIMEOUT = 30.0

R = TypeVar("R")


def session_failure(error: BaseException) -> bool:
    """Whether a session's error while answering an ask is a *failure* (counted towards its
    quarantine, poison if repeated): a bug or a bad record, not a domain answer
    (`YabotError`: not found, insufficient besitos, store unavailable...) nor the runtime
    refusing (`ActorError`: a timeout asking the coordinator)."""
    return not isinstance(error, YabotError | ActorError)


class Runtime:
    """Builds, starts and stops the actor tree and the Telegram runner for ``settings``."""

    def __init__(
        self,
        settings: Settings,
        *,
        mongo_client_factory: MongoClientFactory = MongoClient,
        on_fatal: Callable[[], None] | None = None,
        scheduler_clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        #: The scheduler's time (epoch seconds): the wall clock, or a test's hand-moved one.
        self.scheduler_clock = scheduler_clock or time.time
        self.health = HealthRegistry()
        self.stores = Stores()
        self.events = Events(settings, self.stores)
        #: Event handlers by type of the default consumer group (``EVENTS_CONSUMER_GROUP``);
        #: register them before `start`. A group with no handlers is not run.
        self.event_handlers = Handlers()
        #: Every consumer group, each with its own handlers and its own record of what it
        #: handled; add one here before `start`.
        #: What each kind of scheduled job does (`yabot.scheduler`); register before `start`.
        self.job_handlers = JobHandlers()
        #: Who is told what (the notifications group's rules; the VIP warning job's too).
        self.notification_rules = NotificationRules(self._profile, wake=self._wake_notifier)
        self.consumer_groups: list[ConsumerGroup] = [
            ConsumerGroup(settings.events.consumer_group, self.event_handlers),
            self._coordinator_group(settings),
            stats_group(f"{settings.events.consumer_group}:stats"),
            notifications_group(f"{settings.events.consumer_group}:notifications",
                                self.notification_rules),
        ]
        #: Sends what the notifications group queued (through the bot, once it runs), all
        #: of this process's sends sharing one token bucket.
        self.notifier = Notifier(
            lambda: self.stores.relational.engine, self._notification_send,
            bot_expected=settings.bot.token is not None,
            bucket=TokenBucket(settings.notifications.rate, settings.notifications.burst,
                               share=self._rate_share))
        self.health.register("events", self.events.health)
        # Sessions ask the coordinator (a little less patiently than the edges ask them, so
        # the edge sees the coordinator's timeout, not its own); it never asks them back.
        self.coordination = CoordinatorClient(lambda: self.find("coordinator"),
                                              settings.actors.ask_timeout * 0.8)
        self.drafts = Drafts(settings.events.stream, settings.scale.handled_updates_window)
        self.session_services = SessionServices.build(
            self.stores, start_fragment=settings.story.start_fragment, drafts=self.drafts,
            relay=self.events.wake,
            reaction_reward=settings.besitos.reaction_reward,
            reaction_daily_cap=settings.besitos.reaction_daily_cap,
            coordination=self.coordination,
            notify=self._notify,
            forget=lambda user_id: self.sessions.passivate(user_id),
            state_max_age=settings.actors.session_state_max_age,
            offers=read_offers(settings.story.seed_path or DEFAULT_SEED_PATH),
            handled_updates_window=settings.scale.handled_updates_window,
        )
        self.sessions: KeyedActors[int, UserSession] = KeyedActors(
            "sessions",
            lambda user_id: UserSession(user_id, self.session_services),
            idle_timeout=settings.actors.session_idle_timeout,
            max_live=settings.actors.max_sessions,
            workers=settings.actors.session_workers,
            key_max_failures=settings.actors.session_key_max_failures,
            key_period=settings.actors.session_key_failure_period,
            quarantine=settings.actors.session_quarantine,
            poison_after=settings.actors.session_poison_after,
            is_failure=session_failure,
        )
        self.renewal = ContextRenewal(self.sessions, self.stores,
                                      settings.actors.session_state_max_age)
        self._mongo_client_factory = mongo_client_factory
        self._on_fatal = on_fatal
        self._root: pykka.ActorRef[Supervisor] | None = None
        self._supervisor: Supervisor | None = None
        self._bot: BotStart | None = None
        #: Which partitions this process owns (all of them without Redis).
        self.ownership: Ownership = LocalOwnership(settings.scale.partitions)
        #: This process's name among the members (leases, the intake's consumer group).
        self.node_name = consumer_name()
        #: Forwards asks for users other processes own (None: one process, no Redis).
        self.router: AskRouter | None = None
        self._ask_server: AskServer | None = None
        self.failed = threading.Event()
        self._starting = False

    def start(self, *, wait_for_bot: bool = True) -> None:
        """Start the tree, then the bot: here, or with ``wait_for_bot=False`` on a thread of
        its own (the gunicorn worker: its HTTP API answers while aiogram is imported)."""
        if self.settings.redis.url is None and self.events.sink is None:
            # The embedded default: the relay hands the outbox to the consumer groups here.
            stores = self.stores
            self.events.sink = LocalDelivery(lambda: stores.relational.engine,
                                             self.consumer_groups, self.settings.events)
        if self.settings.app.env is Environment.TEST:
            crashpoints.arm(self.settings.app.crash_at)
        root = Supervisor(
            "root",
            [
                ChildSpec("stores", self._stores_supervisor),
                ChildSpec("events", self._events_supervisor),
                ChildSpec("coordinator", self._coordinator),
                self.sessions.child_spec(),
                ChildSpec("scheduler", self._scheduler),
            ],
        )
        self._starting = True  # a failed start is raised to our caller, not reported as fatal
        try:
            self._root = spawn(lambda: root, on_exit=self._root_exited)
        finally:
            self._starting = False
        self._supervisor = root
        log.info("actor tree started")
        ownership = self.ownership = self._ownership()
        self.notifier.start()  # after the ownership: its share of the rate is what it owns
        self.renewal.start()
        if isinstance(ownership, RedisOwnership):
            self._serve_forwarded_asks(ownership)
        if self.settings.bot.token is not None:
            stores = self.stores
            self._bot = BotStart(
                self.settings, self.sessions,
                lambda: build_intake(self.settings, lambda: stores.relational.engine,
                                     self.node_name),
                owned=ownership.owned, owns=ownership.owns, seen=self._seen_update)
            self.health.register("telegram", self._bot.health)
            if wait_for_bot:
                self._bot.run()
            else:
                self._bot.begin()
        else:
            log.info(
                "telegram is not connected: set TELEGRAM_BOT_TOKEN to poll for updates, "
                "with BOT_WEBHOOK_URL for a webhook (and TELEGRAM_API_URL for a self-hosted "
                "Bot API server); `yabot chat` talks to the bot in a terminal"
            )
        ownership.start()
        self.health.register("partitions", self._partitions_health)

    def _notify(self, user_id: int, message: Message) -> None:
        """One session tells another user's (the recipient of a transfer or gift): at that
        user's owner, which may be another process."""
        router = self.router
        if router is not None and not router.owns(user_id):
            router.tell(user_id, message, self.settings.actors.ask_timeout)
        else:
            self.sessions.tell(user_id, message)

    def _serve_forwarded_asks(self, ownership: RedisOwnership) -> None:
        key = self.settings.jwt_secret().encode()
        count = self.settings.scale.partitions
        timeout = self.settings.actors.ask_timeout
        server = self._ask_server = AskServer(
            self.settings.scale.forward_host, key,
            lambda user_id, message: self.sessions.ask(user_id, message, timeout=timeout),
            lambda user_id: ownership.owns(partition_of(user_id, count)),
            self.sessions.tell,
        )
        server.start()
        ownership.address = server.address
        self.router = AskRouter(ownership, count, AskForwarder(key),
                                remember_for=self.settings.scale.lease_renew_interval)

    def _ownership(self) -> Ownership:
        scale, url = self.settings.scale, self.settings.redis.url
        if url is None:
            return LocalOwnership(scale.partitions)
        client = redis.Redis.from_url(url.get_secret_value(),
                                      socket_timeout=scale.intake_redis_timeout,
                                      socket_connect_timeout=scale.intake_redis_timeout,
                                      retry=Retry(NoBackoff(), 0))
        return RedisOwnership(
            client, self.node_name, partitions=scale.partitions,
            prefix=scale.intake_key_prefix, ttl=scale.lease_ttl,
            renew_interval=scale.lease_renew_interval, safety_margin=scale.lease_safety_margin,
            lost=self._partitions_lost, busy=self._busy,
        )

    def _busy(self, partition: int) -> int:
        bot = self.bot
        return bot.busy(partition) if bot is not None else 0

    def _partitions_health(self) -> ComponentHealth:
        """Which partitions this process owns now, and their fencing tokens (/readyz)."""
        owned = self.ownership.owned()
        tokens = self.ownership.tokens()
        return ComponentHealth(name="partitions", status=HealthStatus.PASS, details={
            "owned": ",".join(str(p) for p in owned),
            "count": len(owned),
            "tokens": ",".join(f"{p}:{tokens[p]}" for p in sorted(tokens)),
            "node": self.node_name,
        })

    def cluster_metrics(self) -> str:
        """Prometheus text: partitions owned, intake lag per owned partition, takeovers,
        forwarded asks (sent, served), redeliveries skipped."""
        owned = self.ownership.owned()
        bot = self.bot
        lines = [
            "# HELP yabot_partitions_owned Partitions this process owns now.",
            "# TYPE yabot_partitions_owned gauge",
            f"yabot_partitions_owned {len(owned)}",
            "# HELP yabot_partition_takeovers_total Partition leases this process acquired.",
            "# TYPE yabot_partition_takeovers_total counter",
            f"yabot_partition_takeovers_total {getattr(self.ownership, 'takeovers', 0)}",
            "# HELP yabot_forwarded_asks_total Asks sent to the owning process, and served "
            "for other processes.",
            "# TYPE yabot_forwarded_asks_total counter",
            "yabot_forwarded_asks_total{direction=\"sent\"} "
            f"{self.router.forwarder.forwarded if self.router else 0}",
            "yabot_forwarded_asks_total{direction=\"served\"} "
            f"{self._ask_server.served if self._ask_server else 0}",
            "# HELP yabot_redeliveries_skipped_total Updates skipped: handled before.",
            "# TYPE yabot_redeliveries_skipped_total counter",
            f"yabot_redeliveries_skipped_total {bot.redeliveries_skipped if bot else 0}",
            "# HELP yabot_intake_lag Entries of an owned partition accepted, not yet handled.",
            "# TYPE yabot_intake_lag gauge",
        ]
        if bot is not None:
            for partition in owned:
                try:
                    lag = bot.intake.lag(partition)
                except Exception as exc:
                    # The intake is down: no figure rather than a wrong one.
                    log.warning("intake lag unreadable", partition=partition,
                                error=type(exc).__name__)
                    continue
                lines.append(f'yabot_intake_lag{{partition="{partition}"}} {lag}')
        return "\n".join(lines) + "\n"

    def _partitions_lost(self, partitions: list[int]) -> None:
        """Drop what this process cached of the users of ``partitions`` (another process owns
        them now, or soon) and let the reader claim them afresh if they come back."""
        bot, lost = self.bot, set(partitions)
        if bot is not None and bot.reader is not None:
            bot.reader.forget(partitions)
        count = self.settings.scale.partitions
        for user_id in self.sessions.live_keys():
            if partition_of(user_id, count) in lost:
                try:
                    self.sessions.tell(user_id, Relinquish())
                except Exception:
                    log.warning("session not told to relinquish", user_id=user_id,
                                exc_info=True)

    async def _seen_update(self, user_id: int, update_id: int) -> bool:
        return await self.sessions.ask_async(user_id, SeenUpdate(update_id=update_id),
                                             timeout=self.settings.actors.ask_timeout)

    def _stores_supervisor(self) -> Supervisor:
        return stores_supervisor(
            self.settings, self.stores, self._mongo_client_factory, health=self.health
        )

    def _coordinator(self) -> Coordinator:
        def seed() -> None:
            seed_at_start(self.stores, self.settings)

        besitos = self.settings.besitos
        return Coordinator(self.stores, on_start=seed, drafts=self.drafts,
                           recovery=Recovery(besitos.recovery_interval, besitos.recovery_after),
                           relay=self.events.wake)

    def _coordinator_group(self, settings: Settings) -> ConsumerGroup:
        """What the coordinator does because of events (README, "Scheduler"): keep each
        user's VIP expiry job at the end of their current subscription, and the warning job
        ``NOTIFICATIONS_VIP_WARNING_LEAD`` before it."""
        handlers = Handlers()
        handlers.on(SubscriptionChanged, vip_jobs(settings.notifications.vip_warning_lead))
        self.job_handlers.on(VIP_EXPIRY, expire_vip(self._ask_owner))
        self.job_handlers.on(VIP_WARNING, warn_vip(
            lambda: self.stores.relational.engine, self.notification_rules,
            lambda user_id: self._ask_owner(user_id, GetSubscription()),
            lambda: datetime.fromtimestamp(self.scheduler_clock(), UTC)))
        return ConsumerGroup(f"{settings.events.consumer_group}:coordinator", handlers)

    def _ask_owner(self, user_id: int, message: Ask[R]) -> R:
        """Ask ``user_id``'s session where it lives: here, or at the process that owns the
        user's partition (a scheduled job fires on whichever process took it)."""
        router, timeout = self.router, self.settings.actors.ask_timeout
        if router is not None and not router.owns(user_id):
            return router.forward(user_id, message, timeout)
        return self.sessions.ask(user_id, message, timeout=timeout)

    def _scheduler(self) -> SchedulerActor:
        return SchedulerActor(self.settings, self.stores, self.job_handlers,
                              clock=self.scheduler_clock)

    def _events_supervisor(self) -> Supervisor:
        return events_supervisor(self.settings, self.stores, self.events, self.consumer_groups)

    def stop(self) -> None:
        """Stop the bot, then the tree (children in reverse start order). Idempotent."""
        self.renewal.stop()
        self.notifier.stop()
        if self._bot is not None:
            self._bot.stop()
            self._bot = None
        # After the bot drained: the leases go back only once nothing of theirs runs here.
        self.ownership.stop()
        if self._ask_server is not None:
            self._ask_server.stop()
            self._ask_server = None
        root, self._root = self._root, None
        if root is not None:
            root.stop(block=True, timeout=ROOT_STOP_TIMEOUT)
            log.info("actor tree stopped")

    def http_routes(self) -> dict[str, object]:
        """Falcon resources the runtime's parts serve on the API app (path → resource): the
        Telegram webhook when the bot runs in webhook mode."""
        bot, secret = self._bot, self.settings.bot.webhook_secret
        if bot is None or not bot.webhook or secret is None:
            return {}
        webhook = TelegramWebhook(bot, secret.get_secret_value(),
                                  self.settings.bot.webhook_max_body)
        return {WEBHOOK_PATH: webhook}

    def _profile(self, user_id: int) -> UserDocument | None:
        return self.stores.documents.users.get(user_id)

    def _rate_share(self) -> float:
        """This process's part of the bot's notification rate: the partitions it owns."""
        return len(self.ownership.owned()) / self.settings.scale.partitions

    def _wake_notifier(self) -> None:
        self.notifier.wake()

    def _notification_send(self) -> Send | None:
        runner = self.bot
        if runner is None:
            return None
        from yabot.notifications.telegram import telegram_send  # aiogram: only with a bot

        return telegram_send(runner.bot, runner.run_on_loop, self.settings.actors.ask_timeout)

    def daily_stats(self, first: date, last: date) -> list[DailyFigures]:
        """The daily figures of ``first``..``last`` (`yabot.events.stats`)."""
        return daily_figures(self.stores.relational.engine, first, last)

    @property
    def bot(self) -> BotRunner | None:
        """The Telegram runner, when TELEGRAM_BOT_TOKEN is set and the bot started."""
        return self._bot.runner if self._bot is not None else None

    def find(self, path: str) -> pykka.ActorRef[Any] | None:
        """A running actor of the tree by path, e.g. ``"stores/sql"``; None while it is down."""
        root = self._root
        if root is None or not root.is_alive():
            return None
        return self._supervisor.find(path) if self._supervisor is not None else None

    @property
    def running(self) -> bool:
        return self._root is not None and self._root.is_alive()

    def __enter__(self) -> Runtime:
        """``with Runtime(settings) as runtime:`` starts it and stops it however the block
        ends (actor threads are not daemons: a runtime never stopped keeps the process)."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _root_exited(self, exit_: ActorExit) -> None:
        if not exit_.failed or self._starting:
            return
        log.critical("root supervisor gave up; shutting down", error=repr(exit_.error))
        self.failed.set()
        if self._on_fatal is not None:
            self._on_fatal()
