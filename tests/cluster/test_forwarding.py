"""The forwarding listener in one process: signed asks answered, problems carried unchanged,
the correlation id carried, hostile input refused, an owner that does not answer in time is a
504, an unreachable one a 503."""

from __future__ import annotations

import contextvars
import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from actors import Ask, AskTimeout
from yabot.api.problems import Problem
from yabot.cluster.forwarding import (
    MAX_FORWARD_BODY,
    AskForwarder,
    AskServer,
    OwnerMoved,
    OwnerUnreachable,
    sign,
)
from yabot.domain.besitos import LedgerEntry
from yabot.errors import Unprocessable, UserNotFound
from yabot.logs import bind_correlation_id, current_correlation_id
from yabot.sessions.messages import (
    Credited,
    GetLedger,
    GetWallet,
    LedgerPage,
    SetPreferences,
    Wallet,
)

KEY = b"k" * 32
PAID = LedgerEntry(key="u5:paid", user_id=5, amount=-3, balance_after=4, reason="rose")


class Owner:
    """What the listener calls: records asks and tells, answers or raises as told."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, Ask[Any]]] = []
        self.correlation_ids: list[object] = []
        self.told: list[tuple[int, Any]] = []
        self.owns = True
        self.raise_: Exception | None = None
        self.release = threading.Event()
        self.release.set()

    def ask(self, user_id: int, message: Ask[Any]) -> Any:
        self.release.wait(10)
        self.asked.append((user_id, message))
        self.correlation_ids.append(current_correlation_id())
        if self.raise_ is not None:
            raise self.raise_
        if isinstance(message, GetLedger):
            return LedgerPage(entries=(PAID,), next_cursor="c2")
        return Wallet(balance=7, entries=())


@pytest.fixture
def owner() -> Iterator[tuple[Owner, AskServer]]:
    owner = Owner()
    server = AskServer("127.0.0.1", KEY, owner.ask, lambda user_id: owner.owns,
                       lambda user_id, message: owner.told.append((user_id, message)))
    server.start()
    yield owner, server
    owner.release.set()
    server.stop()


def exchange_raw(server: AskServer, data: bytes) -> dict[str, Any] | None:
    """Send ``data`` as it is; the listener's reply frame, or None when it closed without
    one."""
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65_536):
            received += chunk
            if len(received) >= 4 and len(received) >= 4 + struct.unpack("!I", received[:4])[0]:
                break
    if not received:
        return None
    answer: dict[str, Any] = json.loads(received[4:])
    return answer


def signed_frame(body: bytes, signature: str) -> bytes:
    return struct.pack("!I", len(signature) + len(body)) + signature.encode() + body


def test_a_forwarded_ask_is_answered_with_the_owners_reply(owner: tuple[Owner, AskServer]
                                                           ) -> None:
    recorded, server = owner
    reply = AskForwarder(KEY).ask(server.address, 5, GetWallet(limit=3), timeout=5)
    assert reply == Wallet(balance=7, entries=())
    assert recorded.asked == [(5, GetWallet(limit=3))]


def test_a_ledger_page_is_read_from_the_owner_with_its_cursor(owner: tuple[Owner, AskServer]
                                                              ) -> None:
    """``GET /user/{id}/besitos`` in any process pages the owner's history."""
    recorded, server = owner
    reply = AskForwarder(KEY).ask(server.address, 5, GetLedger(limit=1, cursor="c1"), timeout=5)
    assert reply == LedgerPage(entries=(PAID,), next_cursor="c2")
    assert recorded.asked == [(5, GetLedger(limit=1, cursor="c1"))]
    recorded.raise_ = Unprocessable("cursor is not one this API returned")
    with pytest.raises(Problem) as raised:
        AskForwarder(KEY).ask(server.address, 5, GetLedger(cursor="zz"), timeout=5)
    assert raised.value.status_code == 422


def test_the_owners_problem_reaches_the_client_unchanged(owner: tuple[Owner, AskServer]
                                                         ) -> None:
    recorded, server = owner
    recorded.raise_ = UserNotFound(5)
    with pytest.raises(Problem) as raised:
        AskForwarder(KEY).ask(server.address, 5, GetWallet(), timeout=5)
    assert raised.value.status_code == 404
    assert raised.value.problem_code == UserNotFound(5).code


def test_a_process_that_no_longer_owns_the_user_answers_503_and_runs_nothing(
    owner: tuple[Owner, AskServer]
) -> None:
    recorded, server = owner
    recorded.owns = False
    with pytest.raises(OwnerMoved) as raised:
        AskForwarder(KEY).ask(server.address, 5, GetWallet(), timeout=5)
    assert raised.value.status_code == 503
    assert recorded.asked == []


def test_the_correlation_id_reaches_the_owner(owner: tuple[Owner, AskServer]) -> None:
    recorded, server = owner

    def ask(correlation_id: str | None) -> None:
        if correlation_id is not None:
            bind_correlation_id(correlation_id)
        AskForwarder(KEY).ask(server.address, 5, GetWallet(), timeout=5)

    contextvars.Context().run(ask, "req-42")
    contextvars.Context().run(ask, None)  # a caller with none: the owner binds its own
    assert recorded.correlation_ids[0] == "req-42"
    assert recorded.correlation_ids[1] != "req-42"


def test_asks_from_one_thread_share_one_connection_and_survive_its_close(
    owner: tuple[Owner, AskServer]
) -> None:
    """The connection is kept alive between asks; one the listener closed (here: a restart
    of the listener's side, as `stop` does to open connections) is replaced at the next ask
    without an error."""
    recorded, server = owner
    forwarder = AskForwarder(KEY)
    for _ in range(3):
        forwarder.ask(server.address, 5, GetWallet(), timeout=5)
    assert len(server._connections) == 1
    for connection in list(server._connections):
        connection.shutdown(socket.SHUT_RDWR)
    assert forwarder.ask(server.address, 5, GetWallet(), timeout=5) == Wallet(balance=7,
                                                                               entries=())
    assert len(recorded.asked) == 4


def test_a_tell_is_delivered_to_the_owners_session(owner: tuple[Owner, AskServer]) -> None:
    recorded, server = owner
    credited = Credited(amount=3, balance_after=9, ledger_key="k", reason="transfer")
    AskForwarder(KEY).tell(server.address, 6, credited, timeout=5)
    assert recorded.told == [(6, credited)]


@pytest.mark.parametrize(("body", "signature"), [
    (b'{"user_id": 5, "message": "GetWallet", "payload": "{}"}', "0" * 64),  # forged
    (b'{"user_id": 5, "message": "GetWallet", "payload": "{}"}', ""),  # unsigned
    (b'{"user_id": 5, "message": "os.system", "payload": "{}"}', None),  # not a message
    (b'{"user_id": "x", "message": "GetWallet"}', None),  # malformed
    (b"not json", None),
])
def test_hostile_forwarded_asks_are_refused_and_run_nothing(
    owner: tuple[Owner, AskServer], body: bytes, signature: str | None
) -> None:
    recorded, server = owner
    answer = exchange_raw(server, signed_frame(
        body, sign(KEY, body) if signature is None else signature))
    assert answer is not None
    assert "error" in answer
    assert recorded.asked == []
    assert recorded.told == []


@pytest.mark.parametrize("data", [
    b"POST /internal/ask HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",  # not a frame
    struct.pack("!I", MAX_FORWARD_BODY + 65) + b"x" * 100,  # longer than any ask
    struct.pack("!I", 0),
])
def test_bytes_that_are_not_a_forwarded_ask_are_refused(
    owner: tuple[Owner, AskServer], data: bytes
) -> None:
    recorded, server = owner
    assert exchange_raw(server, data) == {"error": "not a forwarded ask"}
    assert recorded.asked == []


def test_an_owner_that_does_not_answer_in_time_is_a_timeout(owner: tuple[Owner, AskServer]
                                                            ) -> None:
    recorded, server = owner
    recorded.release.clear()
    with pytest.raises(AskTimeout):
        AskForwarder(KEY).ask(server.address, 5, GetWallet(), timeout=0.1)


def test_an_unreachable_owner_is_unavailable() -> None:
    with pytest.raises(OwnerUnreachable):
        AskForwarder(KEY).ask("127.0.0.1:9", 5, SetPreferences.model_validate(
            {"preferences": {"language": "en"}}), timeout=1)
