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

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The current environment minus any YABOT configuration, plus ``extra``."""
    from yabot.settings import Settings

    names = set()
    for section in Settings._SECTIONS.values():
        prefix = str(section.model_config.get("env_prefix", ""))
        names |= {(prefix + field).upper() for field in section.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(extra)
    return env


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
        """Wait until ``path`` answers 200 (``/readyz``: also the bot, started on a thread)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=1) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except OSError:  # refused, reset, or a read timeout while the worker boots
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer {path} in {START_TIMEOUT}s:\n{self.log()}")

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for gunicorn to exit on its own and return the exit code."""
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._log.close()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, and return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")
