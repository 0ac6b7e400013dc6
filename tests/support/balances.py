"""A model of users' balances for stateful API fuzzing (`tests/api/test_schemathesis.py`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import schemathesis


class Balances:
    """What a linked sequence has learnt of each user's balance, from every answer that
    shows one; an answer that contradicts it is a bug (a lost or doubled change, a stale
    read, a transfer's credit missing on the recipient). Steps run one at a time and only
    this machine changes these users while it runs."""

    def __init__(self) -> None:
        self.known: dict[int, int] = {}
        #: How many answers were checked against a balance learnt earlier, per operation.
        self.compared: dict[str, int] = defaultdict(int)

    def saw(self, operation: str, user_id: int, balance: int) -> None:
        if user_id in self.known:
            assert balance == self.known[user_id], (
                f"{operation}: user {user_id} has {balance} besitos, expected "
                f"{self.known[user_id]} from the steps before")
            self.compared[operation] += 1
        self.known[user_id] = balance

    def changed(self, user_id: int, balance: int) -> None:
        self.known[user_id] = balance

    def credited(self, user_id: int, amount: int) -> None:
        if user_id in self.known:
            self.known[user_id] += amount

    def observe(self, case: schemathesis.Case[Any], status: int, body: Any) -> None:
        """Learn from (or check against) one successful answer."""
        if status not in (200, 201) or not isinstance(body, dict):
            return
        label = case.operation.label
        user: int = (case.path_parameters or {}).get("user_id", 0)
        request: dict[str, Any] = case.body if isinstance(case.body, dict) else {}
        if label == "POST /user/{user_id}/besitos":
            self.changed(user, body["balance"])
            if body["kind"] == "transfer" and body["applied"]:
                self.credited(request["to_user_id"], body["amount"])
        elif label in ("POST /user/{user_id}/purchases", "POST /user/{user_id}/gifts"):
            self.changed(user, body["balance"])
        elif label in ("GET /user/{user_id}/state", "PUT /user/{user_id}"):
            self.saw(label, user, body["besitos"])
        elif label == "GET /narrative/{fragment_id}":
            self.saw(label, (case.query or {})["user_id"], body["balance"])
        elif (label == "GET /user/{user_id}/besitos" and body["entries"]
              and not (case.query or {}).get("cursor")):
            self.saw(label, user, body["entries"][0]["balance_after"])
