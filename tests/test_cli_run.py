"""`yabot run` (what `make run` calls): serves on embedded defaults, stops cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support.processes import answers_healthz, clean_env, free_port
from tests.support.waiting import exited


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
            ready = answers_healthz(f"http://127.0.0.1:{port}", process)
            assert ready, log_path.read_text()
            process.send_signal(signal.SIGINT)
            exit_code = exited(process)
        finally:
            if process.poll() is None:
                process.kill()
    output = log_path.read_text()
    assert exit_code == 0, output
    assert "actor tree stopped" in output
    assert (tmp_path / "var" / "yabot.sqlite3").exists()  # data kept for the next start
