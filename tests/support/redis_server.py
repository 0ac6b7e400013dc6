"""A private `redis-server` on a free loopback port, which a test may kill -9 and restart.

It runs with the append-only file on and ``appendfsync always`` in its own temporary
directory, so a SIGKILL loses nothing Redis acknowledged and a restart on the same port finds
the streams and consumer groups where they were. (With ``everysec``, Redis documents that it
may postpone the AOF write by up to 2 s while a background fsync is slow, and it replies
meanwhile, so a SIGKILL can lose acknowledged writes.) That is the configuration the event
bus needs in production for "nothing lost" to hold.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.processes import free_port
from tests.support.waiting import ASK, START_CEILING, STOP_CEILING, scaled

#: The shared local Redis for tests that need one (`local_redis` gives a key prefix on it).
REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")

StreamEntry = tuple[bytes, dict[bytes, bytes]]


def stream_entries(client: redis.Redis, stream: str) -> list[StreamEntry]:
    """Every entry of ``stream`` (XRANGE - +), typed: the client here answers bytes."""
    return cast(list[StreamEntry], client.xrange(stream))


MISSING = (
    "no redis-server binary on PATH: install one (apt-get install redis-server) to run the "
    "tests that kill and restart Redis"
)


def no_retry() -> Retry:
    """redis-py 8 retries 10 times with backoff by default; tests want the first answer."""
    return Retry(NoBackoff(), 0)


@contextlib.contextmanager
def redis_prefix() -> Iterator[tuple[str, str]]:
    """``(url, key_prefix)`` on the shared local Redis; every key under the prefix is deleted
    afterwards. Skips when nothing answers at REDIS_TEST_URL."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=ASK, retry=no_retry())
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        pytest.skip(
            f"Redis is not reachable at {REDIS_TEST_URL} ({type(exc).__name__}); "
            "start it or set REDIS_TEST_URL"
        )
    prefix = f"yabot-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield REDIS_TEST_URL, prefix
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """One ``redis-server`` process; `kill` (SIGKILL) and `start` again keep port and data."""

    def __init__(self, directory: Path, binary: str) -> None:
        self.directory = directory
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = directory / "redis.log"

    def start(self) -> RedisServer:
        if self._process is not None and self._process.poll() is None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--protected-mode", "no", "--daemonize", "no", "--logfile", str(self._log),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_ready()
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown save, clients see the connection drop."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(scaled(STOP_CEILING))

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets and answers nothing — a hung Redis, not a
        dead one (connections are not refused, calls wait for their deadline)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self.resume()  # a stopped process would not act on SIGTERM
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(scaled(STOP_CEILING))
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(scaled(STOP_CEILING))

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=ASK, retry=no_retry())

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + scaled(START_CEILING)
        probe = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=scaled(2), retry=no_retry()
        )
        try:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited at start:\n{self.log()}")
                try:
                    if probe.ping():
                        return
                except redis.exceptions.BusyLoadingError:
                    pass  # replaying the AOF
                except redis.exceptions.ConnectionError:
                    pass
                time.sleep(0.02)
        finally:
            probe.close()
        raise RuntimeError(f"redis-server did not answer:\n{self.log()}")

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else "(no log)"
