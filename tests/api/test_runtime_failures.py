"""Runtime failures through real gunicorn, the real `ApiBridge`, session actors and the SQL
store's guard: an ask that times out is 504, a store whose breaker is open is 503 with
Retry-After (faults injected by `tests/support/failing_store_gunicorn_conf.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api import ServedApi, make_token, problem, served_api
from tests.support.http import Response
from tests.support.processes import REPO

CONFIG = REPO / "tests" / "support" / "failing_store_gunicorn_conf.py"
STUCK_USER, BROKEN_USER, OTHER_USER = 901, 902, 903


@pytest.fixture(scope="module")
def failing_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    with served_api(tmp_path_factory.mktemp("failing-api"), users=(), config=CONFIG,
                    ACTORS_ASK_TIMEOUT="0.5", SQL_RETRY_ATTEMPTS="1", SQL_BREAKER_FAILURES="1",
                    SQL_BREAKER_COOL_DOWN="3600") as served:
        yield served


def _state(api: ServedApi, user_id: int) -> Response:
    return api.call("GET", f"/user/{user_id}/state", token=make_token(["users:read"]))


def test_an_ask_timeout_is_504_and_an_open_breaker_is_503_with_retry_after(
    failing_api: ServedApi,
) -> None:
    problem(_state(failing_api, STUCK_USER), 504, "timeout")

    failed = _state(failing_api, BROKEN_USER)  # the store fails once: the breaker opens
    assert "did not answer" in problem(failed, 503, "store-unavailable")["detail"]
    assert failed.headers["retry-after"] == "1"

    refused = _state(failing_api, OTHER_USER)  # a healthy read, refused by the open breaker
    assert "circuit open" in problem(refused, 503, "store-unavailable")["detail"]
    assert refused.headers["retry-after"] == "1"
