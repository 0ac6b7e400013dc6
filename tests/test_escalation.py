"""The root supervisor giving up ends the process, non-zero, after an orderly shutdown."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import REPO, Gunicorn
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import START_CEILING, STOP_CEILING


def test_root_escalation_stops_the_tree_and_exits_non_zero(tmp_path: Path) -> None:
    server = Gunicorn(
        {"YABOT_DATA_DIR": str(tmp_path / "var"), "JWT_SECRET": TEST_JWT_SECRET},
        tmp_path,
        config=REPO / "tests" / "support" / "escalating_gunicorn_conf.py",
    )

    exit_code = server.wait(START_CEILING + STOP_CEILING)  # the start is part of it

    log = server.log()
    assert exit_code == 3, log  # gunicorn halts instead of forking a fresh worker
    assert "restart intensity exceeded; escalating" in log
    assert "root supervisor gave up; shutting down" in log
    assert "actor tree stopped" in log
    assert log.count("sql store started") == 4  # the first start and the 3 restarts allowed
