"""``kill -9`` of the gunicorn master: its worker is told by the kernel, drains at once and
exits, so the port is free for the next master (instead of serving its whole grace with
readiness passing)."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from tests.support.api import api_env
from tests.support.processes import Gunicorn
from tests.support.waiting import eventually


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited process init has not reaped yet is gone for us)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to find the worker")
def test_a_worker_whose_master_was_killed_drains_exits_and_frees_the_port(
    tmp_path: Path,
) -> None:
    gunicorn = Gunicorn(api_env(tmp_path / "var"), cwd=tmp_path)
    workers: list[int] = []
    try:
        # The line is logged once the worker serves and watches its master (a busy machine
        # takes long to import aiogram: a generous ceiling).
        eventually(lambda: "worker ready" in gunicorn.log(), "the worker started",
                   ceiling=300)
        workers = children(gunicorn.process.pid)
        [worker] = workers

        gunicorn.process.send_signal(signal.SIGKILL)
        gunicorn.process.wait()

        eventually(lambda: not running(worker), "the orphaned worker exited")
        eventually(lambda: port_free(gunicorn.port), "the port can be bound again")
        log = gunicorn.log()
        assert "the gunicorn master died: draining and exiting" in log
        assert "actor tree stopped" in log  # it drained: the runtime was stopped in order
    finally:
        for pid in [gunicorn.process.pid, *workers]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        gunicorn.wait()
