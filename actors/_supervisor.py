"""Supervision with Erlang/OTP semantics on top of pykka, which has none of its own."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pykka
import structlog

from actors._actor import Actor, ActorExit, spawn
from actors._errors import RestartIntensityExceeded, StartFailed
from actors._message import Ask, Message
from actors._metrics import metrics

log = structlog.get_logger("actors.supervisor")

CHILD_STOP_TIMEOUT = 10.0


class Restart(StrEnum):
    """When a child is restarted: always, only after a failure, or never."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Strategy(StrEnum):
    """Which children restart when one exits: itself, all, or itself and those started after it."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


@dataclass(frozen=True)
class ChildSpec:
    """How to start (and restart) one child: ``factory`` builds a fresh, unstarted actor."""

    name: str
    factory: Callable[[], Actor]
    restart: Restart = Restart.PERMANENT


@dataclass(frozen=True)
class _Child:
    spec: ChildSpec
    ref: pykka.ActorRef[Any]
    actor: Actor


class ChildExited(Message):
    """Told to a supervisor by a child's exit listener (from the child's thread)."""

    name: str
    urn: str
    failed: bool
    error: str | None = None


class WhichChildren(Ask[tuple[str, ...]]):
    """Names of the running children, in start order."""


class Supervisor(Actor):
    """Starts children in order, restarts them by strategy, stops them in reverse order.

    - ``max_restarts`` within ``period`` seconds is the restart intensity; one more restart
      makes the supervisor stop its children and fail with `RestartIntensityExceeded`,
      which escalates to whatever watches it (its own supervisor, or the process).
    - A child failing in `pre_start`, at first start or on restart, counts as a failure.
    - Child refs change on restart: look them up with `child` / `find` each time, never cache.
    - `child` and `find` read a table, not the mailbox, so any thread may call them.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
    ) -> None:
        super().__init__()
        names = [spec.name for spec in children]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate child names in supervisor {name}: {names}")
        self.name = name
        self._specs = tuple(children)
        self._strategy = strategy
        self._max_restarts = max_restarts
        self._period = period
        self._restarts: deque[float] = deque()
        self._children: dict[str, _Child] = {}
        self._table_lock = threading.Lock()

    # -- lookups from any thread ------------------------------------------------------------

    def child(self, name: str) -> pykka.ActorRef[Any] | None:
        """The running child called ``name``, or None while it is down."""
        with self._table_lock:
            entry = self._children.get(name)
        return entry.ref if entry is not None else None

    def find(self, path: str) -> pykka.ActorRef[Any] | None:
        """A descendant by slash-separated names, e.g. ``"stores/sql"``."""
        head, _, rest = path.partition("/")
        with self._table_lock:
            entry = self._children.get(head)
        if entry is None:
            return None
        if not rest:
            return entry.ref
        if isinstance(entry.actor, Supervisor):
            return entry.actor.find(rest)
        return None

    # -- lifecycle -----------------------------------------------------------------------------

    def pre_start(self) -> None:
        started: list[str] = []
        try:
            for spec in self._specs:
                self._start(spec)
                started.append(spec.name)
        except StartFailed:
            self._stop_children(started)
            raise

    def post_stop(self) -> None:
        self._stop_children([spec.name for spec in self._specs])

    def handle(self, message: Any) -> Any:
        match message:
            case ChildExited():
                self._child_exited(message)
                return None
            case WhichChildren():
                with self._table_lock:
                    return tuple(s.name for s in self._specs if s.name in self._children)
        return super().handle(message)

    # -- internals ---------------------------------------------------------------------------

    def _start(self, spec: ChildSpec) -> None:
        me = self.actor_ref

        def on_exit(exit_: ActorExit) -> None:
            notice = ChildExited(
                name=spec.name,
                urn=exit_.urn,
                failed=exit_.failed,
                error=repr(exit_.error) if exit_.error is not None else None,
            )
            # ActorDeadError: we are stopping ourselves, so this exit is expected.
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(notice)

        actor: Actor | None = None

        def build() -> Actor:
            nonlocal actor
            actor = spec.factory()
            return actor

        ref = spawn(build, on_exit=on_exit)
        assert actor is not None
        with self._table_lock:
            self._children[spec.name] = _Child(spec, ref, actor)

    def _child_exited(self, exit_: ChildExited) -> None:
        with self._table_lock:
            entry = self._children.get(exit_.name)
            if entry is None or entry.ref.actor_urn != exit_.urn:
                return  # an incarnation we stopped on purpose, or one already replaced
            del self._children[exit_.name]
        spec = entry.spec
        log.warning(
            "child exited", supervisor=self.name, child=spec.name, failed=exit_.failed,
            error=exit_.error,
        )
        if spec.restart is Restart.TEMPORARY or (
            spec.restart is Restart.TRANSIENT and not exit_.failed
        ):
            return
        names = [s.name for s in self._specs]
        index = names.index(spec.name)
        if self._strategy is Strategy.ONE_FOR_ONE:
            affected = [spec.name]
        elif self._strategy is Strategy.ONE_FOR_ALL:
            affected = names
        else:
            affected = names[index:]
        self._stop_children(affected)
        self._restart(affected)

    def _restart(self, names: list[str]) -> None:
        """Start ``names`` in order; a start failure counts as another restart."""
        pending = [s for s in self._specs if s.name in names]
        while pending:
            self._count_restart()
            try:
                for spec in list(pending):
                    self._start(spec)
                    metrics.restarted(type(self._children[spec.name].actor).__name__)
                    pending.remove(spec)
            except StartFailed as exc:
                log.warning("restart failed", supervisor=self.name, error=repr(exc.__cause__))

    def _count_restart(self) -> None:
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > self._period:
            self._restarts.popleft()
        if len(self._restarts) > self._max_restarts:
            log.error(
                "restart intensity exceeded; escalating", supervisor=self.name,
                max_restarts=self._max_restarts, period=self._period,
            )
            # Stop what is left before failing: a parent must not restart us on top of them.
            self._stop_children([s.name for s in self._specs])
            raise RestartIntensityExceeded(
                f"supervisor {self.name}: more than {self._max_restarts} restarts "
                f"in {self._period}s"
            )

    def _stop_children(self, names: list[str]) -> None:
        """Stop the named children in reverse start order, waiting for each."""
        for spec in reversed(self._specs):
            if spec.name not in names:
                continue
            with self._table_lock:
                entry = self._children.pop(spec.name, None)
            if entry is None:
                continue
            try:
                entry.ref.stop(block=True, timeout=CHILD_STOP_TIMEOUT)
            except pykka.Timeout:
                log.error("child did not stop in time", supervisor=self.name, child=spec.name)
