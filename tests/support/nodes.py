"""Several YABOT processes on one PostgreSQL + Redis, each in its own process group so that
``kill -9``, SIGSTOP and SIGCONT reach its gunicorn master and worker at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.http import Response, request
from tests.support.processes import REPO, clean_env, free_port
from tests.support.waiting import scaled

WEBHOOK_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Node:
    """One process: ``yabot run`` or gunicorn with `config/gunicorn.conf.py`."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str, *, gunicorn: bool = False,
                 webhook_secret: str = "", args: tuple[str, ...] = (),
                 port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"{name}.log"
        self._secret = webhook_secret
        command = ([sys.executable, "-m", "gunicorn", "-c",
                    str(REPO / "config" / "gunicorn.conf.py"), *args] if gunicorn
                   else [sys.executable, "-m", "yabot", "run", *args])
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=clean_env({**env, "API_PORT": str(self.port),
                                        "API_HOST": "127.0.0.1"}),
                cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.log()}")
        try:
            return request("GET", self.url + "/readyz", timeout=1).status == 200
        except OSError:
            return False

    def readiness(self) -> dict[str, Any]:
        body: dict[str, Any] = request("GET", self.url + "/readyz", timeout=5).json()
        return body

    def post(self, update: dict[str, Any], timeout: float = 10.0) -> Response:
        return request("POST", self.url + "/telegram/webhook", body=json.dumps(update).encode(),
                       headers={"Content-Type": "application/json",
                                WEBHOOK_SECRET_HEADER: self._secret}, timeout=timeout)

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait(scaled(30))

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM) without waiting: `stop` waits. Several nodes
        asked first and waited for after stop in the time of one."""
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self.signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(scaled(30))
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(scaled(30))
