"""A fake Telegram Bot API server on 127.0.0.1: records what the bot sends, serves updates.

It speaks the Bot API's HTTP shapes (``/bot<token>/<method>``, ``{"ok": true, "result": …}``)
so the real aiogram client talks to it unchanged through ``TELEGRAM_API_URL``.
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.support.waiting import DEFAULT_CEILING, scaled

# The id is the numeric part of the tests' token (tests/bot/conftest.BOT_TOKEN), as Telegram's is.
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "YabotTest", "username": "yabot_test_bot"}
LONG_POLL_CAP = 0.5  # seconds a getUpdates waits at most, whatever the bot asks
HOLD_LIMIT = scaled(DEFAULT_CEILING)  # a held call's wait for its release (a test that forgot)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 drops connections under a burst of replies


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    at: float = 0.0  # time.perf_counter() when the fake received it
    result: Any = None  # what the fake answered (the sent message, for sendMessage)

    @property
    def message_id(self) -> int:
        """The id of the message this call sent or edited."""
        return int(self.result["message_id"])

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of every inline button, row by row."""
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", [])
                for b in row]


@dataclass
class _Fault:
    """Answer ``method`` (None: every method) with ``status``/``body`` ``times`` more times."""

    method: str | None
    status: int
    body: dict[str, Any]
    times: int


class FakeTelegram:
    """Start with `start()`, stop with `stop()`; ``url`` is the TELEGRAM_API_URL to use."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        #: sendMessage calls per chat, kept as they arrive (cheap to read under load).
        self._sent_to: collections.Counter[int] = collections.Counter()
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._confirmed_below = 0  # the highest offset getUpdates was asked with
        self._message_ids = itertools.count(1)
        self._changed = threading.Condition()
        self._faults: list[_Fault] = []
        self._blocked: set[int] = set()
        self.refunded: set[str] = set()  # charge ids refundStarPayment was called for
        self.refused = 0  # calls answered with an injected error
        #: The calls answered with an injected error (``result``: the error body), in order.
        self.refusals: list[Call] = []
        self.in_progress = 0  # calls received and not yet answered
        self._delays: dict[str, float] = {}
        self._holds: dict[str, threading.Event] = {}
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            for release in self._holds.values():
                release.set()
        self._server.shutdown()
        self._server.server_close()

    # -- what tests do -------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates; returns its update_id: the update's own if it has
        an integer one (later updates are numbered after it), else the next number."""
        with self._changed:
            given = update.get("update_id")
            if isinstance(given, int) and given >= self._next_update_id:
                update_id = given
            else:
                update_id = self._next_update_id
            self._next_update_id = update_id + 1
            self._updates.append({**update, "update_id": update_id})
            self._changed.notify_all()
        return update_id

    def confirmed(self, update_id: int) -> bool:
        """Whether the bot confirmed ``update_id`` (asked getUpdates with a higher offset)."""
        with self._changed:
            return self._confirmed_below > update_id

    def push_message(self, user_id: int, text: str, language_code: str = "en") -> int:
        sender = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}",
                  "language_code": language_code}
        return self.push_update({"message": {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": sender["first_name"]},
            "from": sender, "text": text,
            **({"entities": [{"type": "bot_command", "offset": 0,
                               "length": len(text.split()[0])}]} if text.startswith("/") else {}),
        }})

    def outage(self, times: int = 1_000_000) -> None:
        """Answer every call with 502 (as a proxy in front of a down Bot API would)."""
        self._fault(None, 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"},
                    times)

    def recover(self) -> None:
        with self._changed:
            self._faults.clear()

    def flood(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """Answer ``method`` with 429 Too Many Requests and ``retry_after``, ``times`` times."""
        self._fault(method, 429, {
            "ok": False, "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }, times)

    def delay(self, method: str, seconds: float) -> None:
        """Answer ``method`` only after ``seconds`` (a slow Bot API)."""
        with self._changed:
            self._delays[method] = seconds

    def hold(self, method: str) -> threading.Event:
        """Answer ``method`` only once the returned event is set; meanwhile each such call
        counts in ``in_progress`` (the bot's handler is stuck awaiting the Bot API)."""
        release = threading.Event()
        with self._changed:
            self._holds[method] = release
        return release

    def block(self, chat_id: int) -> None:
        """The user ``chat_id`` blocked the bot: sending to them answers 403."""
        with self._changed:
            self._blocked.add(chat_id)

    def _fault(self, method: str | None, status: int, body: dict[str, Any], times: int) -> None:
        with self._changed:
            self._faults.append(_Fault(method, status, body, times))

    def calls_of(self, method: str) -> list[Call]:
        with self._changed:
            return [c for c in self.calls if c.method == method]

    def sent(self, method: str = "sendMessage", chat_id: int | None = None) -> list[Call]:
        with self._changed:
            return [c for c in self.calls if c.method == method and (
                chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)]

    def sent_count(self, chat_id: int) -> int:
        """How many sendMessage calls reached ``chat_id`` (without copying `calls`)."""
        with self._changed:
            return self._sent_to[chat_id]

    def wait_for(self, predicate: Callable[[], bool], ceiling: float = DEFAULT_CEILING) -> bool:
        """Block until ``predicate`` (checked under the fake's lock, after each change)
        holds: True; False after ``scaled(ceiling)`` s."""
        deadline = time.monotonic() + scaled(ceiling)
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    # -- the server ----------------------------------------------------------------------

    def _injected(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        with self._changed:
            for fault in self._faults:
                if fault.times > 0 and fault.method in (None, method):
                    fault.times -= 1
                    self.refused += 1
                    self.refusals.append(Call(method, params, time.perf_counter(), fault.body))
                    self._changed.notify_all()
                    return fault.status, fault.body
            if method in ("sendMessage", "editMessageText") and int(
                params.get("chat_id") or 0
            ) in self._blocked:
                self.refused += 1
                self._changed.notify_all()
                return 403, {"ok": False, "error_code": 403,
                             "description": "Forbidden: bot was blocked by the user"}
        return None

    def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        injected = self._injected(method, params)
        if injected is not None:
            if method == "getUpdates":
                time.sleep(0.05)  # a failing long poll does not spin the bot's retry loop
            return injected
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._get_updates(params)}
        with self._changed:
            pause, release = self._delays.get(method, 0.0), self._holds.get(method)
        if pause or release is not None:
            with self._changed:
                self.in_progress += 1
                self._changed.notify_all()
            if release is not None:
                release.wait(HOLD_LIMIT)
            time.sleep(pause)
            with self._changed:
                self.in_progress -= 1
        status, body = self._result(method, params)
        with self._changed:
            self.calls.append(Call(method, params, time.perf_counter(), body.get("result")))
            if method == "sendMessage":
                self._sent_to[int(params.get("chat_id") or 0)] += 1
            self._changed.notify_all()
        return status, body

    def _result(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "getMe":
            return 200, {"ok": True, "result": BOT_USER}
        if method in ("deleteWebhook", "setWebhook", "answerCallbackQuery", "setMyCommands",
                      "answerPreCheckoutQuery"):
            return 200, {"ok": True, "result": True}
        if method == "refundStarPayment":
            charge = str(params.get("telegram_payment_charge_id"))
            with self._changed:
                refunded_before = charge in self.refunded
                self.refunded.add(charge)
            if refunded_before:
                return 400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: CHARGE_ALREADY_REFUNDED"}
            return 200, {"ok": True, "result": True}
        if method == "sendInvoice":
            chat_id = int(params.get("chat_id", 0))
            return 200, {"ok": True, "result": {
                "message_id": next(self._message_ids), "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"}, "from": BOT_USER,
                "invoice": {"title": params.get("title", ""),
                            "description": params.get("description", ""),
                            "start_parameter": "", "currency": params.get("currency", ""),
                            "total_amount": int(params["prices"][0]["amount"])},
            }}
        if method in ("sendMessage", "editMessageText"):
            chat_id = int(params.get("chat_id", 0))
            return 200, {"ok": True, "result": {
                "message_id": int(params.get("message_id") or next(self._message_ids)),
                "date": int(time.time()), "text": params.get("text", ""),
                "chat": {"id": chat_id, "type": "private"}, "from": BOT_USER,
            }}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        wait = min(float(params.get("timeout") or 0), LONG_POLL_CAP)
        deadline = time.monotonic() + wait
        with self._changed:
            self._confirmed_below = max(self._confirmed_below, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._changed.notify_all()
            while not self._updates and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            return list(self._updates[:int(params.get("limit") or 100)])

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real Bot API (aiohttp reuses)

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: with Nagle's algorithm the second
                # waits for the client's delayed ACK (40 ms) on every keep-alive answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                method = self.path.rstrip("/").rsplit("/", 1)[-1]
                length = int(self.headers.get("Content-Length") or 0)
                params = _parse_body(self.headers.get("Content-Type", ""), self.rfile.read(length))
                status, body = fake._answer(method, params)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a long poll cancelled at shutdown)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """aiogram sends form fields (urlencoded or multipart); complex values are JSON strings."""
    if content_type.startswith("application/json"):
        parsed: dict[str, Any] = json.loads(body or b"{}")
        return parsed
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = part.get_content()
        return {k: _maybe_json(v) for k, v in fields.items()}
    return {k: _maybe_json(v) for k, v in parse_qsl(body.decode())}


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
