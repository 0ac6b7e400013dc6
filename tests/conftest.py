"""Fixtures shared by the whole suite: settings on temporary data, real servers where present."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy

from tests.support.fake_telegram import FakeTelegram
from tests.support.processes import clean_env
from tests.support.waiting import TEST_CEILING, scaled
from yabot.runtime import Runtime
from yabot.settings import Settings, load_settings

TEST_JWT_SECRET = "test-secret-" + "x" * 40
POSTGRES_TEST_URL = os.environ.get(
    "POSTGRES_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


SettingsFactory = Callable[..., Settings]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true",
                     help="also run the long property runs marked `soak` (make soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _leave_out_soak_runs(config, items)
    _scale_the_hang_catcher(config, items)


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
    """A fresh schema on the test PostgreSQL server, dropped afterwards; skip if none."""
    admin = sqlalchemy.create_engine(POSTGRES_TEST_URL)
    try:
        with admin.connect():
            pass
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(
            f"PostgreSQL is not reachable at {POSTGRES_TEST_URL} ({type(exc).__name__}); "
            "start it or set POSTGRES_TEST_URL"
        )
    schema = f"yabot_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    url = sqlalchemy.engine.make_url(POSTGRES_TEST_URL).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
