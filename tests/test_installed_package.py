"""The installed package is the product: the wheel, installed into a fresh virtualenv, runs
the Procfile's `release` and `web` and `yabot seed --check` from a folder with no checkout —
and `web` started from inside a checkout still runs the installed copy.

The wheel is built once per session. Its dependencies are not downloaded again: the fresh
venv sees this venv's site-packages through a ``.pth`` line (which loads no ``.pth`` of that
folder, so this checkout's editable install stays invisible), and gunicorn, whose script the
Procfile calls, is installed into it for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import request
from tests.support.processes import REPO, clean_env, free_port
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import START_CEILING, eventually, scaled

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (its bin folder is returned) with the wheel of this checkout installed."""
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", str(REPO),
                    "-w", str(wheels)], check=True, capture_output=True, timeout=scaled(300))
    [wheel] = wheels.glob("yabot-*.whl")
    target = root / "venv"
    venv.create(target, with_pip=False)
    fresh_python = target / "bin" / "python"
    subprocess.run([*PIP, "--python", str(fresh_python), "install", "--no-deps", str(wheel),
                    "gunicorn"], check=True, capture_output=True, timeout=scaled(300))
    purelib = subprocess.run(
        [str(fresh_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "yabot_test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    return target / "bin"


def _env(bin_dir: Path, data: Path, **extra: str) -> dict[str, str]:
    return clean_env({"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
                      "YABOT_ENV": "production", "JWT_SECRET": TEST_JWT_SECRET,
                      "YABOT_DATA_DIR": str(data), "SQL_AUTO_MIGRATE": "false",
                      "PYTHONPATH": "", **extra})


def _procfile() -> dict[str, str]:
    return {name: command.strip() for name, command in (
        line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines() if line)}


@pytest.fixture
def released(installed: Path, tmp_path: Path) -> Path:
    """`release` and `yabot seed --check` run by the installed package, outside any checkout."""
    data = tmp_path / "var"
    for command in (_procfile()["release"], "yabot seed --check"):
        result = subprocess.run(command, shell=True, cwd=tmp_path,  # noqa: S602 -- as a Procfile runner does
                                env=_env(installed, data), capture_output=True, text=True,
                                timeout=scaled(120), check=False)
        assert result.returncode == 0, f"{command}:\n{result.stdout}{result.stderr}"
    return data


@pytest.fixture(params=["elsewhere", "in-a-checkout"])
def web(request: pytest.FixtureRequest, installed: Path, released: Path,
        tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    cwd = tmp_path if request.param == "elsewhere" else REPO
    port = free_port()
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(_procfile()["web"], shell=True, cwd=cwd,  # noqa: S602
                                   env=_env(installed, released, PORT=str(port)),
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield process, port, log_path
        finally:
            # The whole group: dash (/bin/sh here) runs the Procfile line as its child, not
            # in its own place, so terminating the shell alone left gunicorn serving on.
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(scaled(60))
            eventually(lambda: not _group_alive(process.pid), "gunicorn stopped", 60)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        return request("GET", url, timeout=scaled(5)).status == 200
    except OSError:
        return False


def test_the_installed_package_releases_serves_and_checks_its_story(
    web: tuple[subprocess.Popen[bytes], int, Path], installed: Path,
) -> None:
    process, port, log_path = web
    eventually(lambda: process.poll() is not None or _answers(f"http://127.0.0.1:{port}/readyz"),
               "the installed web answers /readyz", ceiling=START_CEILING)
    assert process.poll() is None, log_path.read_text()
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    [ready] = [record for record in records if record.get("event") == "worker ready"]
    assert Path(ready["package"]).is_relative_to(installed.parent), ready  # not the checkout
    assert ready["bind"] == f"0.0.0.0:{port}"
    seeded = [record for record in records if record.get("event") == "seed story loaded"]
    assert seeded[0]["fragments"] > 0  # the narrative shipped as package data
