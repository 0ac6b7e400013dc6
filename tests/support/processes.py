"""Starting the real service (gunicorn) as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.support.waiting import START_CEILING, STOP_CEILING, scaled

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: The application's own time limits where a busy machine would trip them in a test that is
#: not about them (an ask answered in 6 s is a 504; a worker draining for 25 s is SIGKILLed).
#: A test about one of these limits sets it itself, in ``extra``.
BUSY_MACHINE_ENV = {
    "ACTORS_ASK_TIMEOUT": str(min(120.0, scaled(60.0))),
    "API_GRACEFUL_TIMEOUT": str(int(scaled(60.0))),
    "API_WORKER_TIMEOUT": str(min(3600, int(scaled(120.0)))),
    "API_READ_TIMEOUT": str(min(3600.0, scaled(120.0))),
    "BOT_DRAIN_TIMEOUT": str(min(600.0, scaled(30.0))),
}


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The current environment minus any YABOT configuration, plus `BUSY_MACHINE_ENV`, plus
    ``extra``."""
    from yabot.settings import Settings, env_names

    names = {name for section in Settings._SECTIONS.values()
             for name in env_names(section).values()}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(BUSY_MACHINE_ENV)
    # A hung subprocess that `waiting.exited` aborts prints every thread's stack.
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra)
    return env


def answers_healthz(base_url: str, process: subprocess.Popen[bytes],
                    ceiling: float = START_CEILING, path: str = "/healthz") -> bool:
    """Poll ``base_url`` + ``path`` until it answers 200 (True), ``process`` exits (False) or
    ``scaled(ceiling)`` s pass (False). Each probe may itself take a while on a busy machine:
    a worker that is still booting is not an answer either way."""
    deadline = time.monotonic() + scaled(ceiling)
    pause = 0.01
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(base_url + path, timeout=scaled(5)) as resp:  # noqa: S310
                if resp.status == 200:
                    return True
        except OSError:  # refused, reset, or a read timeout while the worker boots
            pass
        time.sleep(pause)  # between probes, not instead of one
        pause = min(pause * 2, 0.2)
    return False


class Gunicorn:
    """gunicorn with `config/gunicorn.conf.py`, as the Procfile runs it."""

    def __init__(
        self, env: Mapping[str, str], cwd: Path, config: Path = REPO / "config" / "gunicorn.conf.py"
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "gunicorn.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(config)],
            env=clean_env({**env, "API_PORT": str(self.port), "API_HOST": "127.0.0.1"}),
            cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, path: str = "/healthz") -> None:
        """Return once ``path`` answers 200 (``/readyz``: also the bot, which starts on a
        thread after HTTP); fail if gunicorn exits first or does not answer within
        ``scaled(START_CEILING)`` s (a ceiling, not an expected time)."""
        if not answers_healthz(self.base_url, self.process, path=path):
            raise RuntimeError(f"gunicorn did not answer {path}:\n{self.log()}")

    def wait(self, ceiling: float = STOP_CEILING) -> int:
        """Wait for gunicorn to exit on its own (up to ``scaled(ceiling)`` s) and return the
        exit code; killed if it is still running then."""
        try:
            return self.process.wait(scaled(ceiling))
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()

    def terminate(self, ceiling: float = STOP_CEILING) -> int:
        """SIGTERM, wait, and return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(ceiling)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")
