"""All configuration, read once from the environment and `.env` into one immutable tree.

Every variable is listed in `.env.example`. Nothing else in the application reads the
environment. An invalid value raises `ConfigError` naming the variable.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from yabot.errors import ConfigError

ENV_FILE = ".env"
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
MIN_JWT_SECRET_BYTES = 32  # PyJWT's enforce_minimum_key_length floor for HS256


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def _config(prefix: str = "") -> SettingsConfigDict:
    """One naming rule for every section: a field is read from ``prefix + FIELD_NAME`` only;
    the few variables outside their section's prefix (``LOG_LEVEL``, ``DATABASE_URL``...) are
    the field's ``validation_alias``, which then is its only name in the environment (no
    ``populate_by_name``: it would also read ``prefix + FIELD_NAME``, an undocumented variable).
    """
    return SettingsConfigDict(
        env_prefix=prefix, env_file=ENV_FILE, extra="ignore", frozen=True, env_ignore_empty=True,
        case_sensitive=False,
    )


def env_names(section: type[BaseSettings]) -> dict[str, str]:
    """Each field of ``section`` and the environment variable it is read from."""
    prefix = str(section.model_config.get("env_prefix", ""))
    names = {}
    for field, info in section.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[field] = alias.upper()
        else:
            names[field] = (prefix + field).upper()
    return names


def _absolute(value: Path | None) -> Path | None:
    """Relative paths are taken from the directory the process started in, once: gunicorn's
    workers run in another directory (see `yabot.gunicorn_conf`)."""
    return value.absolute() if value is not None else None


def _url_checker(what: str, schemes: tuple[str, ...], example: str,
                 *, needs_host: bool) -> Any:
    """A validator that a secret holds a URL of one of ``schemes`` (``dialect+driver`` counts
    as its dialect), with a host when ``needs_host``; the message never shows the value."""

    def check(value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value()
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"not a {what} URL ({exc}); expected e.g. {example}") from None
        scheme = parts.scheme.split("+", 1)[0].lower()
        if "://" not in text or scheme not in schemes:
            raise ValueError(
                f"not a {what} URL: the scheme must be one of {', '.join(schemes)}; "
                f"expected e.g. {example}"
            )
        if needs_host and not parts.hostname:
            raise ValueError(f"not a {what} URL: no host; expected e.g. {example}")
        return value

    return check


class AppSettings(BaseSettings):
    model_config = _config("YABOT_")

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("./var")
    log_level: Annotated[str, Field(validation_alias="LOG_LEVEL")] = "INFO"
    #: Test hook (honoured only with ``YABOT_ENV=test``): the process exits at once
    #: (``os._exit``) when it reaches the named crash point (`yabot.crashpoints`).
    crash_at: Annotated[str, Field(max_length=64)] | None = None

    _absolute_data_dir = field_validator("data_dir")(_absolute)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


class StoreResilience(BaseSettings):
    """What both stores share, read under each store's own prefix (``MONGODB_RETRY_ATTEMPTS``,
    ``SQL_RETRY_ATTEMPTS``): migrating at start, connecting, retrying, the circuit breaker."""

    auto_migrate: bool = True
    connect_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    retry_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    retry_base_delay: Annotated[float, Field(ge=0, le=60)] = 0.05
    breaker_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    breaker_cool_down: Annotated[float, Field(gt=0, le=3600)] = 10.0


class MongoSettings(StoreResilience):
    model_config = _config("MONGODB_")

    uri: SecretStr | None = None
    database: str = "yabot"
    app_name: str = "yabot"
    max_pool_size: Annotated[int, Field(ge=1, le=1000)] = 50
    connect_timeout_ms: Annotated[int, Field(ge=100, le=120_000)] = 5000
    server_selection_timeout_ms: Annotated[int, Field(ge=100, le=120_000)] = 5000
    socket_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 10_000

    _uri_is_a_url = field_validator("uri")(_url_checker(
        "MongoDB", ("mongodb",), "mongodb://user:password@host:27017/?authSource=admin",
        needs_host=True))


class SqlSettings(StoreResilience):
    model_config = _config("SQL_")

    database_url: Annotated[SecretStr | None, Field(validation_alias="DATABASE_URL")] = None
    sqlite_database_path: Annotated[
        Path | None, Field(validation_alias="SQLITE_DATABASE_PATH")] = None
    pool_size: Annotated[int, Field(ge=1, le=1000)] = 10
    max_overflow: Annotated[int, Field(ge=0, le=1000)] = 10
    pool_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    pool_recycle: Annotated[int, Field(ge=-1)] = 1800
    busy_timeout_ms: Annotated[int, Field(ge=0, le=600_000)] = 5000
    connect_timeout: Annotated[int, Field(ge=1, le=600)] = 5

    _url_is_a_url = field_validator("database_url")(_url_checker(
        "database", ("postgresql", "postgres", "sqlite"),
        "postgresql://user:password@host:5432/yabot or sqlite:////var/lib/yabot/yabot.sqlite3",
        needs_host=False))
    _absolute_sqlite_path = field_validator("sqlite_database_path")(_absolute)


class RedisSettings(BaseSettings):
    model_config = _config("REDIS_")

    url: SecretStr | None = None

    _url_is_a_url = field_validator("url")(_url_checker(
        "Redis", ("redis", "rediss", "unix"), "redis://:password@host:6379/0", needs_host=False))


class PlatformSettings(BaseSettings):
    """What a Procfile platform (Heroku, Dokku, Foreman, Honcho) sets for the web process."""

    model_config = _config()

    #: The port the platform routes traffic to. When set, the server listens on
    #: ``0.0.0.0:PORT``, whatever ``API_HOST`` and ``API_PORT`` say.
    port: Annotated[int, Field(ge=1, le=65535)] | None = None


class ApiSettings(BaseSettings):
    model_config = _config("API_")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    # Four, measured: the worker is one process, so request threads share one GIL; past four
    # they mostly wait for it (state reads 0.52 of hello-world's req/s with 4, 0.43 with 8).
    threads: Annotated[int, Field(ge=1, le=256)] = 4
    graceful_timeout: Annotated[int, Field(ge=1, le=3600)] = 20
    #: Seconds a worker may stay silent (booting included: the actor tree starts in it) before
    #: gunicorn's master kills it.
    worker_timeout: Annotated[int, Field(ge=1, le=3600)] = 60
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 64 * 1024
    #: Seconds a request's head may take to arrive once connected, and its body once its head
    #: is in; past either: 408 and the connection closed. Waiting costs no request thread
    #: (`yabot.api.asgi`, `yabot.api.framing`).
    read_timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0


class JwtAlgorithm(StrEnum):
    """Pinned per deployment: HMAC and asymmetric algorithms are never accepted together."""

    HS256 = "HS256"
    EDDSA = "EdDSA"
    RS256 = "RS256"


class JwtSettings(BaseSettings):
    """Service tokens. HS256 uses ``JWT_SECRET``; EdDSA/RS256 use PEM key files. During a key
    rotation the previous key stays valid under its own ``kid``."""

    model_config = _config("JWT_")

    algorithm: JwtAlgorithm = JwtAlgorithm.HS256
    secret: SecretStr | None = None
    key_id: Annotated[str, Field(min_length=1, max_length=64)] = "k1"
    public_key_file: FilePath | None = None
    private_key_file: FilePath | None = None
    previous_key_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    previous_secret: SecretStr | None = None
    previous_public_key_file: FilePath | None = None
    issuer: str = "yabot"
    audience: str = "yabot-api"
    leeway_seconds: Annotated[float, Field(ge=0, le=300)] = 10.0

    _absolute_key_files = field_validator(
        "public_key_file", "private_key_file", "previous_public_key_file")(_absolute)

    @field_validator("secret", "previous_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_JWT_SECRET_BYTES} bytes long")
        return value

    @model_validator(mode="after")
    def _keys_match_algorithm(self) -> JwtSettings:
        hmac = self.algorithm is JwtAlgorithm.HS256
        if hmac and (self.public_key_file or self.private_key_file
                     or self.previous_public_key_file):
            raise ValueError("JWT_*_KEY_FILE are for EdDSA/RS256; HS256 uses JWT_SECRET")
        if not hmac and (self.secret is not None or self.previous_secret is not None):
            raise ValueError(f"JWT_SECRET is for HS256; {self.algorithm} uses JWT_*_KEY_FILE")
        if not hmac and self.public_key_file is None:
            raise ValueError(f"JWT_PUBLIC_KEY_FILE is required with JWT_ALGORITHM={self.algorithm}")
        previous = self.previous_secret or self.previous_public_key_file
        if (self.previous_key_id is None) != (previous is None):
            raise ValueError("JWT_PREVIOUS_KEY_ID and the previous key are set together")
        if self.previous_key_id is not None and self.previous_key_id == self.key_id:
            raise ValueError("JWT_PREVIOUS_KEY_ID must differ from JWT_KEY_ID")
        return self


class RateLimitSettings(BaseSettings):
    """Requests per token subject (`limits` notation, e.g. ``600/minute;50/second``). Counted
    in memory per process, or in Redis (``REDIS_URL``) across processes."""

    model_config = _config("RATE_LIMIT_")

    enabled: bool = True
    per_subject: str = "1200/minute;100/second"
    key_prefix: Annotated[str, Field(min_length=1, max_length=100)] = "yabot:ratelimit"
    #: Seconds a Redis count may take before this process counts on its own.
    redis_timeout: Annotated[float, Field(gt=0, le=10)] = 0.1
    #: Seconds this process counts on its own after Redis failed, before trying it again.
    redis_retry_after: Annotated[float, Field(gt=0, le=3600)] = 5.0

    @field_validator("per_subject")
    @classmethod
    def _parses(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError("not a rate limit such as 600/minute;50/second") from exc
        return value


class BotSettings(BaseSettings):
    """The Telegram side: token, Bot API server, webhook or polling, retries, limits."""

    model_config = _config("BOT_")

    token: Annotated[SecretStr | None, Field(validation_alias="TELEGRAM_BOT_TOKEN")] = None
    api_url: Annotated[AnyHttpUrl, Field(validation_alias="TELEGRAM_API_URL")] = AnyHttpUrl(
        "https://api.telegram.org")
    webhook_url: AnyHttpUrl | None = None
    webhook_secret: SecretStr | None = None
    #: Largest webhook body accepted (413 above). Real updates are a few KiB.
    webhook_max_body: Annotated[int, Field(ge=1024, le=50_000_000)] = 1_048_576
    #: Most simultaneous webhook connections Telegram may open (setWebhook max_connections).
    webhook_max_connections: Annotated[int, Field(ge=1, le=100)] = 40
    #: Updates accepted but not yet handled; above it the webhook answers 503 (Telegram retries).
    max_pending_updates: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    #: Updates handled at the same time (each waits on its user's session); more wait in line.
    max_concurrent_updates: Annotated[int, Field(ge=1, le=10_000)] = 64
    #: getUpdates long-poll seconds in polling mode.
    polling_timeout: Annotated[int, Field(ge=0, le=50)] = 25
    #: Reconnect backoff when Telegram cannot be reached: first delay, then doubling up to max.
    retry_initial_delay: Annotated[float, Field(gt=0, le=60)] = 1.0
    retry_max_delay: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: How many times one Bot API call is retried after a 429 (waiting its retry_after).
    flood_retries: Annotated[int, Field(ge=0, le=10)] = 3
    #: Seconds to wait for in-flight updates on shutdown.
    drain_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    #: Seconds a user's language (from their preferences) is remembered by the bot.
    language_ttl: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    #: Telegram user ids of operators, comma-separated: they may send /refund in the bot.
    operators: Annotated[tuple[int, ...], NoDecode] = ()

    @field_validator("operators", mode="before")
    @classmethod
    def _user_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z a-z 0-9 _ -")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> BotSettings:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("BOT_WEBHOOK_SECRET is required when BOT_WEBHOOK_URL is set")
        return self


class ActorSettings(BaseSettings):
    model_config = _config("ACTORS_")

    ask_timeout: Annotated[float, Field(gt=0, le=120)] = 5.0
    session_idle_timeout: Annotated[float, Field(gt=0)] = 300.0
    max_sessions: Annotated[int, Field(ge=1)] = 100_000
    session_state_max_age: Annotated[float, Field(ge=0, le=3600)] = 60.0
    #: Worker threads that run every session (there is no thread per session).
    session_workers: Annotated[int, Field(ge=1, le=1024)] = 32
    #: A session failing more than this many times within the period is quarantined.
    session_key_max_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    session_key_failure_period: Annotated[float, Field(gt=0, le=3600)] = 10.0
    session_quarantine: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    #: The same message failing a session this many times is parked, not handled again.
    session_poison_after: Annotated[int, Field(ge=1, le=100)] = 3


class EventSettings(BaseSettings):
    """The event bus (Redis Streams + SQL outbox) and the event processor."""

    model_config = _config("EVENTS_")

    stream: Annotated[str, Field(min_length=1, max_length=100)] = "yabot:events"
    stream_max_length: Annotated[int, Field(ge=1000)] = 100_000
    consumer_group: Annotated[str, Field(min_length=1, max_length=128)] = "yabot"
    consumer_name: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    redis_timeout: Annotated[float, Field(gt=0, le=60)] = 1.0
    retry_base_delay: Annotated[float, Field(gt=0, le=10)] = 0.05
    retry_max_delay: Annotated[float, Field(gt=0, le=60)] = 1.0
    replay_interval: Annotated[float, Field(gt=0, le=600)] = 1.0
    replay_batch: Annotated[int, Field(ge=1, le=10_000)] = 200
    read_block_ms: Annotated[int, Field(ge=10, le=10_000)] = 500
    read_count: Annotated[int, Field(ge=1, le=10_000)] = 100
    handler_retries: Annotated[int, Field(ge=0, le=20)] = 3
    claim_min_idle: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    claim_interval: Annotated[float, Field(gt=0, le=3600)] = 30.0
    ordering_gap_timeout: Annotated[float, Field(gt=0, le=3600)] = 5.0
    #: How long ``processed_events`` and ``dead_letters`` rows are kept (seconds): an event
    #: redelivered within it is recognised as handled; the scheduler prunes older rows.
    retention: Annotated[float, Field(ge=3600)] = 7 * 86_400.0
    #: Seconds between two retention passes of the scheduler.
    retention_interval: Annotated[float, Field(gt=0, le=86_400)] = 3600.0
    #: Seconds between two looks of the scheduler for due jobs (it is also woken early).
    scheduler_poll_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    #: Seconds a scheduler holds a job it fires; another process retries it after that.
    scheduler_lease: Annotated[float, Field(gt=0, le=3600)] = 60.0


class NotificationSettings(BaseSettings):
    """Messages the bot sends unasked (README "Scheduler and retention", Notifications)."""

    model_config = _config("NOTIFICATIONS_")

    #: Seconds before a VIP subscription ends that its user is warned (0: no warning).
    vip_warning_lead: Annotated[float, Field(ge=0, le=30 * 86_400)] = 86_400.0
    #: Notifications one process sends per second at most (Telegram: about 30 per bot).
    rate: Annotated[float, Field(gt=0, le=100_000)] = 30.0
    #: How many may go at once above that rate after a quiet spell (1: none, a steady rate).
    burst: Annotated[float, Field(ge=1, le=100_000)] = 1.0


class ScaleSettings(BaseSettings):
    """Partitions, the durable intake and partition leases (README "Scaling out")."""

    model_config = _config()

    #: How many partitions users are hashed into. Fixed per deployment: changing it moves
    #: users between partitions, so do it only with every process stopped and the intake
    #: drained (README "Scaling out").
    partitions: Annotated[int, Field(ge=1, le=1024)] = 16
    #: Redis keys of the intake streams and leases start with this (``{prefix}:in:{p}``).
    intake_key_prefix: Annotated[str, Field(min_length=1, max_length=100)] = "yabot"
    intake_read_count: Annotated[int, Field(ge=1, le=10_000)] = 100
    intake_read_block_ms: Annotated[int, Field(ge=10, le=10_000)] = 200
    #: Entries handed to the bot and not yet acknowledged, at most (backpressure on reads).
    intake_max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 1024
    intake_redis_timeout: Annotated[float, Field(gt=0, le=60)] = 2.0
    #: How many of each user's handled update ids are remembered to skip redeliveries.
    handled_updates_window: Annotated[int, Field(ge=1, le=10_000)] = 256
    #: A partition lease (and a member's heartbeat) lives this long unless renewed (s).
    lease_ttl: Annotated[float, Field(ge=0.5, le=300)] = 6.0
    #: How often leases and heartbeats are renewed and shares rebalanced (s; < lease_ttl/2).
    lease_renew_interval: Annotated[float, Field(ge=0.1, le=100)] = 2.0
    #: A process stops handling a partition this long before its lease could expire in Redis
    #: (s): room for clock drift between the process and Redis, and for a slow renewal.
    lease_safety_margin: Annotated[float, Field(ge=0, le=60)] = 1.0
    #: The interface a process serves asks forwarded by other processes on (an ephemeral
    #: port, advertised in Redis); other hosts must reach it, so not loopback across hosts.
    forward_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _renewal_fits_the_lease(self) -> ScaleSettings:
        if self.lease_renew_interval * 2 + self.lease_safety_margin > self.lease_ttl:
            raise ValueError("LEASE_TTL must be at least 2 * LEASE_RENEW_INTERVAL + "
                             "LEASE_SAFETY_MARGIN, so one failed renewal does not lose a lease")
        return self


class BesitosSettings(BaseSettings):
    """The besitos economy: what reactions earn."""

    model_config = _config("BESITOS_")

    reaction_reward: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    reaction_daily_cap: Annotated[int, Field(ge=0, le=1_000_000)] = 10
    #: Seconds between recovery passes over transfers and gifts a crash left half done.
    recovery_interval: Annotated[float, Field(gt=0, le=86_400)] = 30.0
    #: How old (seconds) a pending transfer must be before recovery finishes it; the
    #: request that started it normally finishes it within milliseconds.
    recovery_after: Annotated[float, Field(ge=0, le=86_400)] = 10.0


class StorySettings(BaseSettings):
    """The narrative: where the seed story is and whether start-up loads it."""

    model_config = _config("STORY_")

    #: An operator's own narrative folder (story.toml, items.toml); unset = the story shipped
    #: inside the package.
    seed_path: Path | None = None
    seed_on_start: bool = True
    start_fragment: Annotated[str, Field(min_length=1, max_length=128)] = "start"

    _absolute_seed_path = field_validator("seed_path")(_absolute)


class Settings(BaseModel):
    """The whole configuration tree. Build it with `load_settings`."""

    model_config = ConfigDict(frozen=True)

    app: AppSettings
    mongo: MongoSettings
    sql: SqlSettings
    redis: RedisSettings
    api: ApiSettings
    jwt: JwtSettings
    bot: BotSettings
    actors: ActorSettings
    events: EventSettings = Field(default_factory=EventSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    besitos: BesitosSettings = Field(default_factory=BesitosSettings)
    story: StorySettings = Field(default_factory=StorySettings)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)

    _SECTIONS: ClassVar[dict[str, type[BaseSettings]]] = {
        "app": AppSettings, "mongo": MongoSettings, "sql": SqlSettings, "redis": RedisSettings,
        "api": ApiSettings, "jwt": JwtSettings, "bot": BotSettings, "actors": ActorSettings,
        "events": EventSettings, "notifications": NotificationSettings,
        "rate_limit": RateLimitSettings, "besitos": BesitosSettings,
        "story": StorySettings, "platform": PlatformSettings, "scale": ScaleSettings,
    }

    @property
    def is_production(self) -> bool:
        return self.app.env is Environment.PRODUCTION

    @property
    def bind(self) -> tuple[str, int]:
        """Where the API listens: ``0.0.0.0:PORT`` on a Procfile platform, else
        ``API_HOST:API_PORT``."""
        if self.platform.port is not None:
            return "0.0.0.0", self.platform.port  # every interface: the platform routes to it
        return self.api.host, self.api.port

    @property
    def data_dir(self) -> Path:
        return self.app.data_dir

    @property
    def sql_url(self) -> str:
        """`DATABASE_URL` if set, else the SQLite file (default ``<data dir>/yabot.sqlite3``)."""
        if self.sql.database_url is not None:
            return self.sql.database_url.get_secret_value()
        path = self.sql.sqlite_database_path or self.data_dir / "yabot.sqlite3"
        return f"sqlite:///{path}"

    def jwt_secret(self) -> str:
        """`JWT_SECRET`; outside production a random one kept in the data dir when unset.

        Keeping it in a file (mode 0600) lets `yabot token` mint tokens the server accepts.
        """
        if self.jwt.secret is not None:
            return self.jwt.secret.get_secret_value()
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()


def load_settings(**overrides: Any) -> Settings:
    """Read every section from the environment (and `.env`); raise `ConfigError` on bad values.

    ``overrides`` replaces whole sections, e.g. ``load_settings(api=ApiSettings(port=0))``.
    """
    sections: dict[str, Any] = {}
    problems: list[str] = []
    for name, section in Settings._SECTIONS.items():
        if name in overrides:
            sections[name] = overrides[name]
            continue
        try:
            sections[name] = section()
        except ValidationError as exc:
            prefix = str(section.model_config.get("env_prefix", ""))
            variables = env_names(section)
            by_env = {env.lower(): env for env in variables.values()}
            for error in exc.errors():
                loc = str(error["loc"][0]).lower() if error["loc"] else ""
                # A field's error is located at its name, or at its alias when it has one.
                variable = variables.get(loc) or by_env.get(loc) or prefix
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"{variable}: {message} (got {_shown(error)})")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    settings = Settings(**sections)
    if (settings.is_production and settings.jwt.algorithm is JwtAlgorithm.HS256
            and settings.jwt.secret is None):
        raise ConfigError(
            "invalid configuration:\n  JWT_SECRET: required when YABOT_ENV=production"
        )
    return settings


def _shown(error: Any) -> str:
    """The offending input, unless the field holds a secret."""
    loc = " ".join(str(part) for part in error.get("loc", ())).lower()
    if not loc:  # a rule across fields (a model validator): its input holds every field
        return "a combination of values that is not shown"
    if any(word in loc for word in ("secret", "token", "uri", "url")):
        return "a value that is not shown"
    return repr(error.get("input"))
