"""`yabot run` (what `make run` calls): serves on embedded defaults, stops cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.http import request
from tests.support.processes import clean_env, free_port

READY_TIMEOUT = 30.0


def test_yabot_run_serves_healthz_and_exits_zero_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "yabot", "run"],
            env=clean_env({"API_PORT": str(port), "YABOT_DATA_DIR": str(tmp_path / "var")}),
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            status = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status = request("GET", f"http://127.0.0.1:{port}/healthz", timeout=1).status
                except OSError:
                    status = None
                if status == 200:
                    break
                time.sleep(0.1)
            assert status == 200, log_path.read_text()
            process.send_signal(signal.SIGINT)
            exit_code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    output = log_path.read_text()
    assert exit_code == 0, output
    assert "actor tree stopped" in output
    assert (tmp_path / "var" / "yabot.sqlite3").exists()  # data kept for the next start
