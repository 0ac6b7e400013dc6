"""Logs: below the level nothing is rendered, secrets are masked, tracebacks show no locals."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from tests.support.settings import SettingsFactory
from yabot.logs import bind_correlation_id, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    previous, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**previous)
    root.handlers[:], root.level = handlers, level


def _log_everything(make_settings: SettingsFactory, env: str, level: str) -> None:
    configure_logging(make_settings(YABOT_ENV=env, LOG_LEVEL=level,
                                    JWT_SECRET="s" * 40))
    log = structlog.get_logger("tests.logs")
    bind_correlation_id("cid-1")
    log.debug("debug line")
    log.info("info line", user_id=7, api_token="tok-123")
    secret_local = "hunter2-local"  # noqa: F841 (what a traceback must not show)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed line")


@pytest.mark.parametrize("env", ["production", "development"])
def test_lines_below_the_level_are_dropped_and_secrets_never_shown(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str], env: str,
) -> None:
    _log_everything(make_settings, env, "INFO")
    err = capsys.readouterr().err
    for shown in ("info line", "failed line", "ValueError: boom", "cid-1"):
        assert shown in err
    for hidden in ("debug line", "tok-123", "hunter2-local"):
        assert hidden not in err


def test_a_higher_level_drops_info(make_settings: SettingsFactory,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _log_everything(make_settings, "production", "ERROR")
    err = capsys.readouterr().err
    assert "info line" not in err
    assert "failed line" in err
