"""A failure to start is one line — which part, why, what to do — and an exit code per kind:
configuration 2, a dependency unreachable 4, a schema behind the code 5 (`yabot.startup`).

Run as an operator runs it: the Procfile's `web` (gunicorn, whose own exit code for a worker
that cannot boot is 3) and `yabot run`, in production mode (JSON lines)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import clean_env, free_port
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import scaled
from yabot.errors import ConfigError, SchemaMismatch, StoreUnreachable
from yabot.startup import ExitCode, diagnose

WEB = [sys.executable, "-m", "gunicorn", "-c", "python:yabot.gunicorn_conf"]
RUN = [sys.executable, "-m", "yabot", "run"]


def _start(command: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"YABOT_ENV": "production", "JWT_SECRET": TEST_JWT_SECRET,
            "YABOT_DATA_DIR": str(tmp_path / "var"), "API_PORT": str(free_port()),
            "SQL_CONNECT_ATTEMPTS": "1"}
    return subprocess.run(command, env=clean_env({**base, **env}), cwd=tmp_path,
                          capture_output=True, text=True, timeout=scaled(120), check=False)


def _problems(output: str) -> list[str]:
    """Lines at error level or above, whatever their format; gunicorn's plain lines too."""
    found = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "[ERROR]" in line or "[CRITICAL]" in line or line.startswith("yabot cannot"):
                found.append(line)
            continue
        if isinstance(record, dict) and record.get("level") in ("error", "critical"):
            found.append(str(record["event"]))
    return found


@pytest.mark.parametrize("command", [WEB, RUN], ids=["web", "yabot-run"])
def test_an_unreachable_database_is_one_line_and_exit_4(command: list[str],
                                                         tmp_path: Path) -> None:
    closed = free_port()
    result = _start(command, tmp_path,
                    DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed}/yabot")
    output = result.stdout + result.stderr
    assert result.returncode == ExitCode.DEPENDENCY_UNREACHABLE, output
    [line] = _problems(output)
    assert "SQL database" in line
    assert "DATABASE_URL" in line
    assert f"port {closed}" in line
    assert "Traceback" not in output  # tracebacks only at LOG_LEVEL=DEBUG


def test_a_schema_behind_the_code_is_one_line_naming_yabot_migrate_and_exit_5(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "var")
    subprocess.run([sys.executable, "-m", "yabot", "migrate", "--to", "0001"], cwd=tmp_path,
                   env=clean_env({"YABOT_DATA_DIR": data, "YABOT_ENV": "test"}),
                   capture_output=True, timeout=scaled(60), check=True)
    result = _start(WEB, tmp_path, SQL_AUTO_MIGRATE="false")
    output = result.stdout + result.stderr
    assert result.returncode == ExitCode.SCHEMA_MISMATCH, output
    [line] = _problems(output)
    assert "SQL database" in line
    assert "`yabot migrate`" in line
    assert "Traceback" not in output


@pytest.mark.parametrize("command", [WEB, RUN], ids=["web", "yabot-run"])
def test_a_database_url_that_is_not_a_url_is_one_line_and_exit_2(command: list[str],
                                                                 tmp_path: Path) -> None:
    result = _start(command, tmp_path, DATABASE_URL="notaurl")
    assert result.returncode == ExitCode.CONFIGURATION, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("yabot cannot start: settings: DATABASE_URL: not a database URL")
    assert "notaurl" not in line  # a URL may hold a password: never echoed


def test_the_debug_level_shows_the_traceback(tmp_path: Path) -> None:
    result = _start(RUN, tmp_path, LOG_LEVEL="DEBUG",
                    DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/yabot")
    assert result.returncode == ExitCode.DEPENDENCY_UNREACHABLE
    assert "Traceback" in result.stdout + result.stderr


def test_diagnose_follows_the_cause_chain_and_leaves_bugs_alone() -> None:
    try:
        try:
            raise StoreUnreachable("mongo", 3, "ServerSelectionTimeoutError: db:27017")
        except StoreUnreachable as cause:
            raise RuntimeError("DocStore failed to start") from cause
    except RuntimeError as wrapped:
        failure = diagnose(wrapped)
    assert failure is not None
    assert (failure.part, failure.exit_code) == ("MongoDB", ExitCode.DEPENDENCY_UNREACHABLE)
    assert "MONGODB_URI" in failure.line()

    behind = diagnose(SchemaMismatch("at 0001, needs 0002: run `yabot migrate`", store="sql"))
    assert behind is not None
    assert behind.exit_code == ExitCode.SCHEMA_MISMATCH
    settings = diagnose(ConfigError("invalid configuration:\n  A: x\n  B: y"))
    assert settings is not None
    assert "\n" not in settings.line()
    assert diagnose(KeyError("a bug")) is None
