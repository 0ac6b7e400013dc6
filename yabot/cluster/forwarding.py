"""Asks across processes: an ask for a user this process does not own goes to the owner.

Each process serves asks forwarded to it on an internal HTTP listener of its own
(``FORWARD_HOST``, an ephemeral port: with ``gunicorn -w N`` the workers share the public
port, so the owner must be reachable as itself) and advertises that address in Redis next to
its heartbeat. The forwarding side finds the partition's owner from its lease, posts the
message (its class name and JSON) signed with an HMAC of the JWT secret, and gets back the
reply (validated as the ask's reply type) or the problem the owner's ask raised — rendered by
the one error mapping of `yabot.api.problems`, so the client sees the same status, problem
JSON and ``Retry-After`` as from the owner itself. The correlation id travels as
``X-Correlation-ID``. One hop only: a forwarded ask reaching a process that no longer owns
the user answers 503 (the partition is moving; the client retries).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import structlog
from pydantic import TypeAdapter

from actors import Ask, AskTimeout, Message
from yabot.api.problems import Problem, to_http_error
from yabot.errors import Unavailable
from yabot.logs import bind_correlation_id
from yabot.sessions import messages
from yabot.sessions.messages import Credited, Gifted

log = structlog.get_logger("yabot.cluster")

R = TypeVar("R")

FORWARD_PATH = "/internal/ask"
SIGNATURE_HEADER = "X-Yabot-Signature"
CORRELATION_HEADER = "X-Correlation-ID"
#: The owner answers within the ask timeout; this much more covers the hop itself.
HOP_ALLOWANCE = 0.5
MAX_FORWARD_BODY = 1_048_576

#: Every ask the sessions answer, by class name (what travels between processes).
ASKS: dict[str, type[Ask[Any]]] = {
    name: value for name, value in vars(messages).items()
    if isinstance(value, type) and issubclass(value, Ask) and value is not Ask
}
#: Tells one user's session sends another's (the recipient side of transfers and gifts).
TELLS: dict[str, type[Message]] = {cls.__name__: cls for cls in (Credited, Gifted)}


def reply_type(message: Ask[Any]) -> Any:
    """The ``R`` of ``class X(Ask[R])``."""
    for base in type(message).__mro__:
        meta = getattr(base, "__pydantic_generic_metadata__", None)
        if meta and meta.get("origin") is Ask and meta.get("args"):
            return meta["args"][0]
    raise TypeError(f"{type(message).__name__} declares no reply type")


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def problem_of(error: Exception) -> dict[str, Any]:
    """``error`` as the owner's API would answer it (status, title, code, detail, headers)."""
    http_error = to_http_error(error)
    return {"status": http_error.status, "title": http_error.title,
            "code": http_error.problem_code, "detail": http_error.description,
            "headers": dict(http_error.headers or {})}


class AskServer:
    """The internal listener: runs forwarded asks on this process's sessions.

    ``local_ask(user_id, message)`` asks the session (with the ask timeout);
    ``owns(user_id)`` says whether this process owns the user now.
    """

    def __init__(self, host: str, key: bytes, local_ask: Callable[[int, Ask[Any]], Any],
                 owns: Callable[[int], bool],
                 local_tell: Callable[[int, Message], None] = lambda user_id, message: None,
                 ) -> None:
        self._key = key
        self._local_ask = local_ask
        self._local_tell = local_tell
        self._owns = owns
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="forwarded-asks", daemon=True)
        host_bound, port = self._server.server_address[:2]
        self.address = f"{host_bound!s}:{port}"
        #: Asks answered for other processes (for /metrics).
        self.served = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, body: bytes, signature: str, correlation_id: str | None
               ) -> tuple[int, dict[str, Any]]:
        if not hmac.compare_digest(sign(self._key, body), signature):
            return 401, {"error": "bad signature"}
        request = json.loads(body)
        name = str(request["message"])
        message_class = ASKS.get(name)
        tell_class = TELLS.get(name)
        if message_class is None and tell_class is None:
            return 400, {"error": "unknown message"}
        user_id = int(request["user_id"])
        structlog.contextvars.clear_contextvars()
        bind_correlation_id(correlation_id)
        if not self._owns(user_id):
            return 200, {"problem": problem_of(Unavailable(
                "the user's partition is moving between processes; retry"))}
        if tell_class is not None:
            self._local_tell(user_id, tell_class.model_validate_json(request["payload"]))
            self.served += 1
            return 200, {"reply": None}
        assert message_class is not None
        try:
            message = message_class.model_validate_json(request["payload"])
            reply = self._local_ask(user_id, message)
        except Exception as error:
            return 200, {"problem": problem_of(error)}
        self.served += 1
        return 200, {"reply": TypeAdapter(reply_type(message)).dump_python(reply, mode="json")}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: one connection per forwarding thread
            # Headers and body leave in two writes: with Nagle on, the body waits for the
            # client's delayed ACK (40 ms on Linux).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != FORWARD_PATH or not 0 < length <= MAX_FORWARD_BODY:
                    self._send(400, {"error": "not a forwarded ask"})
                    return
                body = self.rfile.read(length)
                try:
                    status, answer = server.answer(
                        body, self.headers.get(SIGNATURE_HEADER) or "",
                        self.headers.get(CORRELATION_HEADER))
                except (ValueError, KeyError, TypeError):
                    status, answer = 400, {"error": "malformed forwarded ask"}
                self._send(status, answer)

            def _send(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # structlog logs what matters

        return Handler


class AskForwarder:
    """Sends an ask to the process at an address and returns its reply (or raises its
    problem). One keep-alive connection per thread and address."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._local = threading.local()
        #: Asks sent to other processes (for /metrics).
        self.forwarded = 0

    def tell(self, address: str, user_id: int, message: Message, timeout: float) -> None:
        """Deliver a tell to ``user_id``'s session at ``address``; raises when the owner did
        not take it (the caller logs and counts it)."""
        answer = self._send(address, user_id, message, timeout)
        if "problem" in answer:
            raise Unavailable(f"the owner of user {user_id} refused the message: "
                              f"{answer['problem'].get('detail')}")

    def ask(self, address: str, user_id: int, message: Ask[R], timeout: float) -> R:
        answer = self._send(address, user_id, message, timeout)
        if "problem" in answer:
            p = answer["problem"]
            raise Problem(p["status"], p["title"], p["code"], p["detail"], p["headers"] or None)
        reply: R = TypeAdapter(reply_type(message)).validate_python(answer["reply"])
        return reply

    def _send(self, address: str, user_id: int, message: Message, timeout: float
              ) -> dict[str, Any]:
        body = json.dumps({"user_id": user_id, "message": type(message).__name__,
                           "payload": message.model_dump_json()}).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._key, body)}
        correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
        if isinstance(correlation_id, str):
            headers[CORRELATION_HEADER] = correlation_id
        self.forwarded += 1
        try:
            status, data = self._post(address, body, headers, timeout + HOP_ALLOWANCE)
        except TimeoutError:
            raise AskTimeout(f"the owner of user {user_id} did not answer in time") from None
        except OSError as exc:
            raise Unavailable(f"the owner of user {user_id} cannot be reached "
                              f"({type(exc).__name__})") from None
        if status != 200:
            raise Unavailable(f"the owner of user {user_id} refused the ask ({status})")
        answer: dict[str, Any] = json.loads(data)
        return answer

    def _post(self, address: str, body: bytes, headers: dict[str, str],
              timeout: float) -> tuple[int, bytes]:
        connections: dict[str, http.client.HTTPConnection] = getattr(
            self._local, "connections", None) or {}
        self._local.connections = connections
        for attempt in (1, 2):  # a kept-alive connection the owner closed: once more, fresh
            connection = connections.get(address)
            if connection is None:
                host, port = address.rsplit(":", 1)
                connection = connections[address] = http.client.HTTPConnection(
                    host, int(port), timeout=timeout)
                connection.connect()
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.timeout = timeout
            try:
                connection.request("POST", FORWARD_PATH, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                del connections[address]
                if attempt == 2:
                    raise
            except Exception:
                connection.close()
                del connections[address]
                raise
        raise AssertionError("unreachable")
