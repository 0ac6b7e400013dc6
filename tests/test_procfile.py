"""The Procfile as a Procfile platform runs it (Heroku, Dokku, Foreman; here Honcho, a
maintained Python runner): `release` first, then `web` with ``PORT`` set by the runner, and
one-off commands through ``honcho run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import bearer, request
from tests.support.processes import REPO, clean_env, free_port
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import START_CEILING, eventually, scaled

BIN = Path(sys.executable).parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env({
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "YABOT_ENV": "production", "JWT_SECRET": TEST_JWT_SECRET,
        "YABOT_DATA_DIR": str(tmp_path / "var"),
        # Only the release phase may change the schema: web refuses a schema behind it.
        "SQL_AUTO_MIGRATE": "false", **extra,
    })


def _honcho(*args: str) -> list[str]:
    return [str(BIN / "honcho"), "-f", str(REPO / "Procfile"), *args]


def test_procfile_declares_release_and_web_for_an_installed_package() -> None:
    lines = dict(line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines()
                 if line.strip())
    assert lines["release"].strip() == "yabot migrate"
    # A module, not a file of the checkout: the installed package runs it from anywhere.
    assert lines["web"].strip() == "gunicorn -c python:yabot.gunicorn_conf"


def test_app_json_declares_the_add_ons_and_every_required_variable() -> None:
    manifest = json.loads((REPO / "app.json").read_text())
    addons = {addon if isinstance(addon, str) else addon["plan"] for addon in manifest["addons"]}
    assert {plan.split(":")[0] for plan in addons} == {"heroku-postgresql", "heroku-redis"}
    assert manifest["scripts"]["postdeploy"] == "yabot migrate"
    env = manifest["env"]
    assert env["YABOT_ENV"]["value"] == "production"
    assert env["JWT_SECRET"]["generator"] == "secret"
    listed = {line.split("=", 1)[0].lstrip("# ").strip()
              for line in (REPO / ".env.example").read_text().splitlines() if "=" in line}
    assert set(env) <= listed, "app.json names a variable the settings do not read"


@pytest.fixture
def released(tmp_path: Path) -> Path:
    """The release phase has run: ``honcho start release`` (it ends when `yabot migrate` does)."""
    result = subprocess.run(_honcho("-d", str(tmp_path), "start", "release"), cwd=tmp_path,
                            env=_env(tmp_path), capture_output=True, text=True,
                            timeout=scaled(120), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "schema ok" in result.stdout
    return tmp_path


@pytest.fixture
def web(released: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    log_path = released / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _honcho("-d", str(released), "start", "-p", str(port), "web"), cwd=released,
            env=_env(released, API_PORT=str(free_port())), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            yield process, port, log_path
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _answers(url: str) -> bool:
    try:
        return request("GET", url, timeout=scaled(5)).status == 200
    except OSError:
        return False


def test_web_listens_on_the_platforms_port_after_release_and_serves_the_api(
    web: tuple[subprocess.Popen[bytes], int, Path], tmp_path: Path,
) -> None:
    process, port, log_path = web
    eventually(lambda: process.poll() is not None or _answers(f"http://127.0.0.1:{port}/healthz"),
               "web answers /healthz on $PORT", ceiling=START_CEILING)
    assert process.poll() is None, log_path.read_text()

    minted = subprocess.run(
        _honcho("-d", str(tmp_path), "run", "yabot", "token", "--sub", "ops", "--scope",
                "users:read"),
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=scaled(60),
        check=True,
    )
    state = request("GET", f"http://127.0.0.1:{port}/user/1/state",
                    headers=bearer(minted.stdout.strip()))
    assert state.status == 404  # authenticated, routed, answered by the actors: no such user
    assert state.json()["type"].endswith("user-not-found")

    os.killpg(process.pid, signal.SIGTERM)
    process.wait(scaled(60))
    log = log_path.read_text()
    assert f"0.0.0.0:{port}" in log  # the platform's port on every interface, not API_PORT
