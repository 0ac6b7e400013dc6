"""API commands across processes: a 2xx is given only once the change is committed by the
user's owner (asks are synchronous; forwarded ones too), so ``kill -9`` of a process right
after its 2xx loses nothing, and a client retrying what got no answer with the same
``Idempotency-Key`` through another process gets exactly one effect."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from pydantic import SecretStr

from tests.support.cluster import PARTITIONS, TAKEOVER_BOUND, Cluster
from tests.support.fake_telegram import FakeTelegram
from tests.support.http import bearer, request
from tests.support.nodes import Node
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import eventually
from yabot.api.auth import mint_token
from yabot.intake import partition_of
from yabot.settings import JwtSettings, load_settings

pytestmark = pytest.mark.timeout(600)

#: Earns per user, each under its own key.
EARNS = 40


def test_kill_9_after_a_2xx_loses_no_api_command_and_retries_apply_once(
    cluster: Cluster, fake_telegram: FakeTelegram
) -> None:
    a, b = cluster.start(fake_telegram, fake_telegram)
    eventually(lambda: cluster.settled([a, b]), "two fair shares", 60)
    settings = load_settings(jwt=JwtSettings(secret=SecretStr(TEST_JWT_SECRET)))
    token = bearer(mint_token(settings, "tests", ["users:read", "users:write",
                                                  "besitos:write"]))
    b_owned = cluster.owned_by(b)
    mine = [u for u in range(6001, 6200) if partition_of(u, PARTITIONS) in b_owned][:3]
    theirs = [u for u in range(6001, 6200) if partition_of(u, PARTITIONS) not in b_owned][:3]
    users = mine + theirs  # owned by the victim, and by the survivor (forwarded to by b)
    for user in users:
        created = request("PUT", f"{a.url}/user/{user}", headers={
            **token, "Content-Type": "application/json"},
            body=json.dumps({"first_name": f"u{user}"}).encode())
        assert created.status in (200, 201), created.body
    initial = {user: int(request("GET", f"{a.url}/user/{user}/state", headers=token)
                         .json()["besitos"]) for user in users}
    acknowledged: list[str] = []  # keys answered 2xx, by any process, before or after the kill
    answered = threading.Lock()
    killed = threading.Event()

    def earn(node: Node, user: int, key: str) -> bool:
        """One attempt; True once answered 2xx. A dead process or a moving partition (503)
        is retried, as a client would, with the same key."""
        try:
            response = request("POST", f"{node.url}/user/{user}/besitos", headers={
                **token, "Content-Type": "application/json", "Idempotency-Key": key},
                body=json.dumps({"kind": "earn", "amount": 1}).encode())
        except OSError:
            return False
        assert response.status in (200, 503, 504), response.body
        if response.status != 200:
            return False
        with answered:
            acknowledged.append(key)
        return True

    def send(user: int) -> None:
        for n in range(EARNS):
            key = f"earn-{user}-{n}"
            # Through the process that does not own the user as often as the one that does.
            node = b if n % 2 and not killed.is_set() else a
            if not earn(node, user, key):
                eventually(partial(earn, a, user, key), f"{key} applied through a")

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        sending = [pool.submit(send, user) for user in users]
        eventually(lambda: len(acknowledged) >= len(users) * EARNS // 3,
                   "a third of the commands answered")
        b.kill9()
        killed.set()
        for future in sending:
            future.result()
    eventually(lambda: cluster.settled([a]), "a owns every partition", TAKEOVER_BOUND * 4)

    assert len(set(acknowledged)) == len(users) * EARNS
    for user in users:
        state = request("GET", f"{a.url}/user/{user}/state", headers=token)
        assert state.status == 200, state.body
        # Every key applied exactly once, including those whose 2xx came from the victim.
        assert state.json()["besitos"] == initial[user] + EARNS, f"user {user}"
    for key in acknowledged:
        user = int(key.split("-")[1])
        again = request("POST", f"{a.url}/user/{user}/besitos", headers={
            **token, "Content-Type": "application/json", "Idempotency-Key": key},
            body=json.dumps({"kind": "earn", "amount": 1}).encode())
        assert again.status == 200, again.body
        assert again.json()["applied"] is False, key  # stored before its first 2xx
