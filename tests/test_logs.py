"""Logs: below the level nothing is rendered, secrets are masked, tracebacks show no locals."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.http import request
from tests.support.processes import Gunicorn
from tests.support.settings import TEST_JWT_SECRET, SettingsFactory
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


def test_probe_request_lines_only_at_debug_and_durations_rounded(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    for level in ("INFO", "DEBUG"):
        configure_logging(make_settings(YABOT_ENV="production", LOG_LEVEL=level,
                                        JWT_SECRET="s" * 40))
        log = structlog.get_logger("tests.logs")
        log.info("request", method="GET", path="/healthz", status="200 OK", ms=0.123456)
        log.info("request", method="GET", path="/user/1/state", status="200 OK",
                 ms=1.987654, wait_s=0.123456789)
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        paths = [line["path"] for line in lines]
        assert paths == (["/user/1/state"] if level == "INFO"
                         else ["/healthz", "/user/1/state"])
        assert lines[-1]["ms"] == 1.99
        assert lines[-1]["wait_s"] == 0.1235


def test_every_line_of_production_gunicorn_is_json_with_correlation_ids(
    tmp_path: Path,
) -> None:
    server = Gunicorn({"YABOT_ENV": "production", "JWT_SECRET": TEST_JWT_SECRET,
                       "YABOT_DATA_DIR": str(tmp_path / "var")}, cwd=tmp_path)
    try:
        server.wait_ready()
        answer = request("GET", f"{server.base_url}/user/1/state",
                         headers={"X-Request-Id": "trace-me-42"})
        assert answer.status == 401
    finally:
        assert server.terminate() == 0, server.log()
    records = []
    for line in server.log().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    loggers = {record.get("logger") for record in records}
    assert {"gunicorn.error", "yabot.serving", "yabot.api"} <= loggers
    [request_line] = [r for r in records if r.get("event") == "request"]  # /healthz: none
    assert request_line["path"] == "/user/1/state"
    assert request_line["correlation_id"] == "trace-me-42"


@pytest.mark.parametrize(("env", "accesslog", "builds"), [
    ("production", None, False),  # access logger at WARNING: its lines would be dropped
    ("development", None, False),  # gunicorn's own default: no access log
    ("production", "-", False),  # still WARNING through our logconfig
    ("development", "-", True),  # asked for, and the access logger emits INFO
])
def test_gunicorn_builds_access_lines_only_where_they_are_written(
    make_settings: SettingsFactory, env: str, accesslog: str | None, builds: bool,
) -> None:
    from gunicorn.config import Config  # type: ignore[import-untyped]

    from yabot.gunicorn_logger import Logger
    from yabot.serving import gunicorn_config

    config = Config()
    options = gunicorn_config(make_settings(YABOT_ENV=env, JWT_SECRET="s" * 40))
    for name in ("logconfig_dict", "accesslog", "logger_class"):
        if name in options:
            config.set(name, options[name])
    config.set("accesslog", accesslog)
    assert config.logger_class is Logger
    assert Logger(config).access_log_enabled is builds
