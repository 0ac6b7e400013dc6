"""Fixtures shared by the whole suite: settings on temporary data, real servers where present."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_telegram import FakeTelegram
from tests.support.postgres import postgres_schema
from tests.support.processes import REPO, clean_env
from tests.support.redis_server import redis_prefix
from tests.support.settings import TEST_JWT_SECRET, SettingsFactory
from tests.support.stores import stores_on
from tests.support.waiting import TEST_CEILING, scaled
from yabot.runtime import Runtime
from yabot.settings import Settings, load_settings
from yabot.stores.handles import Stores


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true",
                     help="also run the long property runs marked `soak` (make soak)")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (`make test`) runs one worker more than the machine has CPUs: with one per
    CPU about a third of the CPU time was idle while tests waited for leases to pass,
    processes to start, a fake Telegram's replies (figures: README, Tests)."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _leave_out_soak_runs(config, items)
    _scale_the_hang_catcher(config, items)
    _long_modules_first(items)


#: The modules that take longest (process starts, a few tests each), longest first, from
#: ``--durations=0`` summed per module (setup and teardown included) on a loaded 2-core
#: machine. Tune it from `make test`'s output: a long module handed out last keeps one worker
#: busy alone at the end.
LONG_MODULES = (
    "tests/cluster/test_three_masters.py",
    "tests/cluster/test_processes.py",
    "tests/intake/test_crash_once.py",
    "tests/bot/test_console.py",
    "tests/events/test_crash_points.py",
    "tests/intake/test_crash.py",
    "tests/api/test_slow_clients.py",
    "tests/notifications/test_broadcast.py",
    "tests/bot/test_bot.py",
    "tests/api/test_schemathesis.py",
    "tests/notifications/test_vip_warning.py",
    "tests/stores/test_migration_safety.py",
    "tests/bot/test_webhook.py",
    "tests/scheduler/test_scheduler.py",
    "tests/cluster/test_api_durability.py",
    "tests/stores/test_migrations.py",
    "tests/api/test_limits.py",
    "tests/test_end_to_end.py",
    "tests/test_readme.py",
    "tests/coordinator/test_concurrent_debits.py",
    "tests/events/test_outage.py",
    "tests/test_cli_comforts.py",
    "tests/test_startup_failures.py",
    "tests/test_installed_package.py",
    "tests/test_runtime.py",
    "tests/test_procfile.py",
    "tests/api/test_shutdown.py",
)


def _long_modules_first(items: list[pytest.Item]) -> None:
    """`LONG_MODULES` run first, in that order, then the rest in collection order.

    The Makefile runs xdist's ``--dist loadscope`` with ``--no-loadscope-reorder``, so workers
    take modules in this order; by default xdist hands out the modules with the fewest tests
    last — these — and one worker would still be running one of them long after the other
    ran out of work. Longest first lets the short ones fill in around them."""
    missing = [module for module in LONG_MODULES if not (REPO / module).is_file()]
    if missing:  # a renamed module would silently lose its place
        raise pytest.UsageError(f"LONG_MODULES names no such file: {', '.join(missing)}")
    rank = {module: n for n, module in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(LONG_MODULES)))


def _leave_out_soak_runs(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ``--soak``, tests marked ``soak`` are deselected (reported as such)."""
    if config.getoption("--soak"):
        return
    soak = [item for item in items if item.get_closest_marker("soak") is not None]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if item.get_closest_marker("soak") is None]


def _scale_the_hang_catcher(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The per-test hang catcher (pytest-timeout's ``timeout`` in setup.cfg, else
    `TEST_CEILING`) scaled by ``YABOT_TEST_TIME_SCALE`` like every other ceiling, on each test
    without its own ``timeout`` marker. ``--timeout`` on the command line wins."""
    if not config.pluginmanager.hasplugin("timeout") or config.getoption("timeout", None):
        return
    ceiling = scaled(float(config.getini("timeout") or TEST_CEILING))
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(ceiling))


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SettingsFactory:
    """``make_settings(**env)`` → Settings read from exactly ``env`` (no stray .env files)."""
    monkeypatch.chdir(tmp_path)

    def build(**env: str) -> Settings:
        base = {"YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
                "JWT_SECRET": TEST_JWT_SECRET}
        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in clean_env({**base, **env}).items():
            monkeypatch.setenv(name, value)
        return load_settings()

    return build


@pytest.fixture
def in_process_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test that runs a `yabot` command through `yabot.cli.main` in this process.

    The command's `configure_logging` would replace the root logger's handlers with one
    bound to the ``sys.stderr`` of that moment — this test's capture, closed when it ends —
    so every log line later in the session, from any thread, would fail with "--- Logging
    error ---". Logging set-up is not what such a test checks: it is left out.
    """
    monkeypatch.setattr("yabot.logs.configure_logging", lambda _settings: None)


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """The whole application's actor tree on the default (embedded) settings."""
    with Runtime(settings) as runtime:
        yield runtime


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A schema on the test PostgreSQL shared by this process's tests (each xdist worker has
    its own), dropped at the end; tests build their tables in it and drop them. Skips if no
    server answers."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A schema of this test's own on the test PostgreSQL (for an app that migrates it
    itself), dropped afterwards; skips if no server answers."""
    with postgres_schema("yabot_fresh") as url:
        yield url


@pytest.fixture
def local_redis() -> Iterator[tuple[str, str]]:
    """``(url, key_prefix)`` on the shared local Redis; every key under the prefix is deleted
    afterwards. Skips when nothing answers at REDIS_TEST_URL."""
    with redis_prefix() as found:
        yield found


@pytest.fixture(params=["sqlite", "mongomock"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Relational on SQLite; documents on the `sql` backend (same file) or mongomock."""
    with stores_on(request.param, request, tmp_path) as stores:
        yield stores
