"""Asks across processes: an ask for a user this process does not own goes to the owner.

Each process serves asks forwarded to it on an internal TCP listener of its own
(``FORWARD_HOST``, an ephemeral port: with ``gunicorn -w N`` the workers share the public
port, so the owner must be reachable as itself) and advertises that address in Redis next to
its heartbeat. The forwarding side finds the partition's owner from its lease, sends the
message (its class name and JSON) signed with an HMAC of the JWT secret, and gets back the
reply (validated as the ask's reply type) or the problem the owner's ask raised — rendered by
the one error mapping of `yabot.api.problems`, so the client sees the same status, problem
JSON and ``Retry-After`` as from the owner itself. The correlation id travels with the
message. One hop only: a forwarded ask reaching a process that no longer owns the user is
answered 503 and marked ``moved`` (the asker may look the owner up again; nothing ran).

The wire: length-prefixed frames on a kept-alive connection, one request frame then one
reply frame. A request frame is a 4-byte big-endian length, the 64 hex digits of the
HMAC-SHA256 of the JSON that follows, and that JSON (``user_id``, ``message``, ``payload``,
``correlation_id``); a reply frame is a length and JSON (``reply``, ``problem`` [+ ``moved``]
or ``error``). Not HTTP: the hop was measured at 300-360 µs of CPU per ask (both sides) with
`http.server` / `http.client` — email-parser headers, two sends per message each way —
against 55-70 µs with frames, and half the asks of a two-process deployment take the hop.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import select
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from pydantic import TypeAdapter

from actors import Ask, AskTimeout, Message
from yabot.api.problems import Problem, to_http_error
from yabot.errors import Unavailable
from yabot.logs import bind_correlation_id, current_correlation_id
from yabot.sessions import messages
from yabot.sessions.messages import Credited, Gifted

log = structlog.get_logger("yabot.cluster")

R = TypeVar("R")

#: The owner answers within the ask timeout; this much more covers the hop itself.
HOP_ALLOWANCE = 0.5
MAX_FORWARD_BODY = 1_048_576
_LENGTH = struct.Struct("!I")
_SIGNATURE = 64  # hex digits of an HMAC-SHA256

#: Every ask the sessions answer, by class name (what travels between processes).
ASKS: dict[str, type[Ask[Any]]] = {
    name: value for name, value in vars(messages).items()
    if isinstance(value, type) and issubclass(value, Ask) and value is not Ask
}
#: Tells one user's session sends another's (the recipient side of transfers and gifts).
TELLS: dict[str, type[Message]] = {cls.__name__: cls for cls in (Credited, Gifted)}


class OwnerMoved(Problem):
    """The process asked no longer owns the user (the partition moved); it ran nothing, so
    the ask may go to the owner looked up afresh. The problem is the owner's 503."""


class OwnerUnreachable(Unavailable):
    """No connection to the owner's listener could be made; nothing was sent."""


def reply_type(message: Ask[Any]) -> Any:
    """The ``R`` of ``class X(Ask[R])``."""
    for base in type(message).__mro__:
        meta = getattr(base, "__pydantic_generic_metadata__", None)
        if meta and meta.get("origin") is Ask and meta.get("args"):
            return meta["args"][0]
    raise TypeError(f"{type(message).__name__} declares no reply type")


@functools.cache
def _adapter(reply: Any) -> TypeAdapter[Any]:
    """One `TypeAdapter` per reply type: building one costs more than the (de)serialising."""
    return TypeAdapter(reply)


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def request_frame(key: bytes, body: bytes) -> bytes:
    """``body`` (JSON) as a signed request frame (the module docstring)."""
    signature = sign(key, body).encode()
    return _LENGTH.pack(len(signature) + len(body)) + signature + body


def problem_of(error: Exception) -> dict[str, Any]:
    """``error`` as the owner's API would answer it (status, title, code, detail, headers)."""
    http_error = to_http_error(error)
    return {"status": http_error.status, "title": http_error.title,
            "code": http_error.problem_code, "detail": http_error.description,
            "headers": dict(http_error.headers or {})}


class FrameReader:
    """Frames from one socket (a length, then that many bytes), read through one buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def read(self) -> bytes | None:
        """The next frame's bytes; None when the peer closed the connection between frames.
        `ConnectionError` when it closed mid-frame, `ValueError` for a length out of
        bounds."""
        if not self._fill(_LENGTH.size):
            if self._buffer:
                raise ConnectionError("the connection closed inside a frame")
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        if not 0 < length <= MAX_FORWARD_BODY + _SIGNATURE:
            raise ValueError(f"a frame of {length} bytes")
        end = _LENGTH.size + length
        if not self._fill(end):
            raise ConnectionError("the connection closed inside a frame")
        frame = bytes(self._buffer[_LENGTH.size:end])
        del self._buffer[:end]
        return frame

    def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            chunk = self._sock.recv(max(65_536, size - len(self._buffer)))
            if not chunk:
                return False
            self._buffer += chunk
        return True


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True  # a kept-alive connection's thread must not hold the process up
    allow_reuse_address = True


class AskServer:
    """The internal listener: runs forwarded asks on this process's sessions, one thread per
    connection (each forwarding thread of another process keeps one).

    ``local_ask(user_id, message)`` asks the session (with the ask timeout);
    ``owns(user_id)`` says whether this process owns the user now. `stop` closes the open
    connections too, so the forwarders reconnect to whoever owns the users next.
    """

    def __init__(self, host: str, key: bytes, local_ask: Callable[[int, Ask[Any]], Any],
                 owns: Callable[[int], bool],
                 local_tell: Callable[[int, Message], None] = lambda user_id, message: None,
                 ) -> None:
        self._key = key
        self._local_ask = local_ask
        self._local_tell = local_tell
        self._owns = owns
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = _Listener((host, 0), self._handler())
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
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):  # closed by the peer meanwhile
                connection.shutdown(socket.SHUT_RDWR)

    def answer(self, frame: bytes) -> dict[str, Any]:
        """The reply to one request frame (its signature, then its JSON)."""
        signature, body = frame[:_SIGNATURE], frame[_SIGNATURE:]
        if not hmac.compare_digest(sign(self._key, body).encode(), signature):
            return {"error": "bad signature"}
        request = json.loads(body)
        name = str(request["message"])
        message_class = ASKS.get(name)
        tell_class = TELLS.get(name)
        if message_class is None and tell_class is None:
            return {"error": "unknown message"}
        user_id = int(request["user_id"])
        correlation_id = request.get("correlation_id")
        structlog.contextvars.clear_contextvars()
        bind_correlation_id(correlation_id if isinstance(correlation_id, str) else None)
        if not self._owns(user_id):
            return {"moved": True, "problem": problem_of(Unavailable(
                "the user's partition is moving between processes; retry"))}
        if tell_class is not None:
            self._local_tell(user_id, tell_class.model_validate_json(request["payload"]))
            self.served += 1
            return {"reply": None}
        assert message_class is not None
        try:
            message = message_class.model_validate_json(request["payload"])
            reply = self._local_ask(user_id, message)
        except Exception as error:
            return {"problem": problem_of(error)}
        self.served += 1
        return {"reply": _adapter(reply_type(message)).dump_python(reply, mode="json")}

    def _serve(self, connection: socket.socket) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._connections.add(connection)
        reader = FrameReader(connection)
        try:
            while (frame := reader.read()) is not None:
                try:
                    answer = self.answer(frame)
                except (ValueError, KeyError, TypeError):
                    answer = {"error": "malformed forwarded ask"}
                data = json.dumps(answer).encode()
                connection.sendall(_LENGTH.pack(len(data)) + data)
                if "error" in answer:
                    return  # a peer sending garbage or forgeries is not one to keep
        except ValueError:  # a length out of bounds: not a forwarder
            connection.sendall(_frame_of({"error": "not a forwarded ask"}))
        except OSError:
            pass  # the peer went away, or `stop` closed the connection
        finally:
            with self._lock:
                self._connections.discard(connection)

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve(self.request)

        return Handler


def _frame_of(answer: dict[str, Any]) -> bytes:
    data = json.dumps(answer).encode()
    return _LENGTH.pack(len(data)) + data


class _Connection:
    """A kept-alive connection to one owner's listener (one per forwarding thread)."""

    def __init__(self, address: str, timeout: float) -> None:
        host, port = address.rsplit(":", 1)
        try:
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        except TimeoutError:
            raise  # the owner's host does not answer: as an ask not answered in time (504)
        except OSError as exc:
            raise OwnerUnreachable(f"the owner's listener at {address} cannot be reached "
                                   f"({type(exc).__name__})") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = FrameReader(self.sock)

    def dropped(self) -> bool:
        """Whether this idle connection has something to read: the owner's close (or bytes
        it was not asked for); either way it is not one to send an ask on. Checked before
        sending, so an ask is never sent on a connection the owner already closed (it would
        then be unknown whether the owner ran it)."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def exchange(self, frame: bytes, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        self.sock.sendall(frame)
        return self.reader.read()

    def close(self) -> None:
        self.sock.close()


class AskForwarder:
    """Sends an ask to the process at an address and returns its reply (or raises its
    problem). One kept-alive connection per thread and address."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._local = threading.local()
        #: Asks sent to other processes (for /metrics).
        self.forwarded = 0

    def tell(self, address: str, user_id: int, message: Message, timeout: float) -> None:
        """Deliver a tell to ``user_id``'s session at ``address``; raises when the owner did
        not take it (the caller logs and counts it): `OwnerMoved` when it does not own the
        user any more."""
        answer = self._send(address, user_id, message, timeout)
        if answer.get("moved"):
            raise _problem(answer)
        if "problem" in answer:
            raise Unavailable(f"the owner of user {user_id} refused the message: "
                              f"{answer['problem'].get('detail')}")

    def ask(self, address: str, user_id: int, message: Ask[R], timeout: float) -> R:
        """``message``'s reply from ``user_id``'s session at ``address``; the owner's problem
        raised as a `Problem` (`OwnerMoved` when it does not own the user any more)."""
        answer = self._send(address, user_id, message, timeout)
        if "problem" in answer:
            raise _problem(answer)
        reply: R = _adapter(reply_type(message)).validate_python(answer["reply"])
        return reply

    def _send(self, address: str, user_id: int, message: Message, timeout: float
              ) -> dict[str, Any]:
        correlation_id = current_correlation_id()
        body = json.dumps({
            "user_id": user_id, "message": type(message).__name__,
            "payload": message.model_dump_json(),
            "correlation_id": correlation_id,
        }).encode()
        self.forwarded += 1
        try:
            answer: dict[str, Any] = json.loads(self._exchange(
                address, request_frame(self._key, body), timeout + HOP_ALLOWANCE))
        except TimeoutError:
            raise AskTimeout(f"the owner of user {user_id} did not answer in time") from None
        except OwnerUnreachable:
            raise
        except (OSError, ValueError) as exc:
            raise Unavailable(f"the owner of user {user_id} cannot be reached "
                              f"({type(exc).__name__})") from None
        if "error" in answer:
            raise Unavailable(f"the owner of user {user_id} refused the ask "
                              f"({answer['error']})")
        return answer

    def _exchange(self, address: str, frame: bytes, timeout: float) -> bytes:
        connections: dict[str, _Connection] = getattr(self._local, "connections", None) or {}
        self._local.connections = connections
        connection = connections.get(address)
        if connection is not None and connection.dropped():
            connection.close()  # the owner closed it while idle (it stopped): a new one
            connection = None
        if connection is None:
            # `OwnerUnreachable` from here means nothing was sent.
            connection = connections[address] = _Connection(address, timeout)
        try:
            data = connection.exchange(frame, timeout)
            if data is None:
                raise ConnectionError("the owner closed the connection before answering")
        except Exception:
            connection.close()
            del connections[address]
            raise
        return data


def _problem(answer: dict[str, Any]) -> Problem:
    p = answer["problem"]
    error = OwnerMoved if answer.get("moved") else Problem
    return error(p["status"], p["title"], p["code"], p["detail"], p["headers"] or None)
