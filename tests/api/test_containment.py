"""One user's bad record, hammered through real gunicorn: that user is quarantined, the other
50 are served throughout, and the process stays up and reports it."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.api import GUNICORN_CONF, api_env, environment, make_token, prepare_users
from tests.support.http import Response, request
from tests.support.processes import Gunicorn
from tests.support.waiting import eventually, scaled

BROKEN_USER = 1
OTHERS = range(2, 52)


def test_a_users_session_failing_on_every_request_is_quarantined_alone(tmp_path: Path) -> None:
    env = api_env(tmp_path / "var")
    with environment(env, tmp_path) as settings:
        prepare_users(settings, [BROKEN_USER, *OTHERS])
    # A bad record: every read of this user's document fails validation in the session.
    with sqlite3.connect(tmp_path / "var" / "yabot.sqlite3") as db:
        changed = db.execute("UPDATE user_documents SET document = '{\"garbage\": true}' "
                             "WHERE user_id = ?", (BROKEN_USER,)).rowcount
    assert changed == 1
    gunicorn = Gunicorn(env, cwd=tmp_path, config=GUNICORN_CONF)
    token = make_token(["users:read"])
    headers = {"Authorization": f"Bearer {token}"}

    def get(path: str) -> Response:
        return request("GET", gunicorn.base_url + path, headers=headers,
                       timeout=scaled(30))

    try:
        gunicorn.wait_ready()
        others_done = threading.Event()
        broken: Counter[int] = Counter()

        def hammer() -> None:  # as fast as one client goes, until the others are done
            while not others_done.is_set() and sum(broken.values()) < 20_000:
                broken[get(f"/user/{BROKEN_USER}/state").status] += 1

        def serve(user_id: int) -> list[int]:
            return [get(f"/user/{user_id}/state").status for _ in range(10)]

        hammering = threading.Thread(target=hammer)
        hammering.start()
        try:
            eventually(lambda: broken[503] > 0, what="the broken user is quarantined",
                       ceiling=60)
            with ThreadPoolExecutor(10) as pool:
                served = list(pool.map(serve, OTHERS))
        finally:
            others_done.set()
            hammering.join()

        assert served == [[200] * 10 for _ in OTHERS]
        assert set(broken) == {500, 503}, broken  # failed until quarantined, then refused
        refused = get(f"/user/{BROKEN_USER}/state")
        assert refused.status == 503
        assert refused.json()["type"] == "/problems/unavailable"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        ready = get("/readyz")
        assert ready.status == 200  # one user's problem: the process is still ready
        actors = ready.json()["checks"]["actors"][0]
        assert actors["status"] == "warn"
        assert actors["details"]["quarantined"] == 1
        metrics = get("/metrics").body.decode()
        assert 'actors_quarantined{actor_class="UserSession"} 1' in metrics
    finally:
        exit_code = gunicorn.terminate()
    assert exit_code == 0, gunicorn.log()  # it never went down: an orderly stop, exit 0
    assert "root supervisor gave up" not in gunicorn.log()
