"""Supervision: strategies, restart types, intensity and escalation, nesting, start/stop order."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from actors import (
    Actor,
    Ask,
    ChildSpec,
    Message,
    Restart,
    RestartIntensityExceeded,
    StartFailed,
    Strategy,
    Supervisor,
    ask,
    tell,
)
from actors.testkit import ProbeHandle, crash_on
from tests.support.actors import actor_kit
from tests.support.waiting import ASK, eventually


class Ping(Ask[str]):
    pass


class Crash(Message):
    pass


class Finish(Message):
    """Makes a worker stop itself normally (a non-failure exit)."""


class Lifecycle(Message):
    name: str
    event: str  # "started" | "stopped"


class Worker(Actor):
    """Reports its lifecycle to a probe, answers Ping, stops itself on Finish."""

    def __init__(self, name: str, probe: ProbeHandle) -> None:
        super().__init__()
        self._name = name
        self._probe = probe

    def pre_start(self) -> None:
        tell(self._probe.ref, Lifecycle(name=self._name, event="started"))

    def post_stop(self) -> None:
        tell(self._probe.ref, Lifecycle(name=self._name, event="stopped"))

    def handle(self, message: Any) -> Any:
        match message:
            case Ping():
                return self._name
            case Finish():
                self.stop()
                return None
        return super().handle(message)


class FailsToStart(Actor):
    def pre_start(self) -> None:
        raise RuntimeError("cannot open the store")


def spec(name: str, probe: ProbeHandle, restart: Restart = Restart.PERMANENT) -> ChildSpec:
    return ChildSpec(name, crash_on(Crash, lambda: Worker(name, probe)), restart)


def events(probe: ProbeHandle, count: int) -> list[tuple[str, str]]:
    return [(m.name, m.event) for m in probe.receive_n(count)]


def child(sup: Supervisor, name: str) -> pykka.ActorRef[Any]:
    """The running child; waits for it, since a child starts before its supervisor files it."""
    eventually(lambda: sup.child(name) is not None, f"{name} is running")
    ref = sup.child(name)
    assert ref is not None
    return ref


def crash(sup: Supervisor, name: str) -> None:
    """Kill the child with a told message and wait until its replacement answers."""
    old = child(sup, name)
    tell(old, Crash())
    eventually(lambda: (ref := sup.child(name)) is not None and ref is not old, name)


def test_children_start_in_order_and_stop_in_reverse_order() -> None:
    with actor_kit() as kit:
        probe = kit.probe()
        ref = kit.spawn(lambda: Supervisor("s", [spec(n, probe) for n in "abc"]))
        assert events(probe, 3) == [("a", "started"), ("b", "started"), ("c", "started")]
        ref.stop(block=True)
        assert events(probe, 3) == [("c", "stopped"), ("b", "stopped"), ("a", "stopped")]


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, ["b"]),
        (Strategy.ONE_FOR_ALL, ["a", "b", "c"]),
        (Strategy.REST_FOR_ONE, ["b", "c"]),
    ],
)
def test_strategy_decides_which_children_restart(strategy: Strategy, restarted: list[str]) -> None:
    with actor_kit() as kit:
        probe = kit.probe()
        sup = Supervisor("s", [spec(n, probe) for n in "abc"], strategy=strategy)
        kit.spawn(lambda: sup)
        events(probe, 3)
        before = {name: child(sup, name) for name in "abc"}

        tell(before["b"], Crash())

        # The crashed child exits by failure (post_stop still runs); the others affected are
        # stopped in reverse order; then all of them start again in order.
        others = [n for n in reversed(restarted) if n != "b"]
        expected = [("b", "stopped"), *((n, "stopped") for n in others),
                    *((n, "started") for n in restarted)]
        assert events(probe, len(expected)) == expected
        probe.expect_no_message()
        for name in "abc":
            replaced = child(sup, name) is not before[name]
            assert replaced == (name in restarted), name
            assert ask(child(sup, name), Ping(), timeout=ASK) == name


@pytest.mark.parametrize(
    ("restart", "after_failure", "after_normal_exit"),
    [
        (Restart.PERMANENT, True, True),
        (Restart.TRANSIENT, True, False),
        (Restart.TEMPORARY, False, False),
    ],
)
def test_restart_type_decides_whether_an_exit_is_restarted(
    restart: Restart, after_failure: bool, after_normal_exit: bool
) -> None:
    with actor_kit() as kit:
        probe = kit.probe()
        sup = Supervisor("s", [spec("failing", probe, restart), spec("finishing", probe, restart)])
        kit.spawn(lambda: sup)
        events(probe, 2)

        tell(child(sup, "failing"), Crash())
        tell(child(sup, "finishing"), Finish())

        expected_events = 2 + after_failure + after_normal_exit
        observed = events(probe, expected_events)
        probe.expect_no_message()
        assert (("failing", "started") in observed) == after_failure
        assert (("finishing", "started") in observed) == after_normal_exit
        for name, running in (("failing", after_failure), ("finishing", after_normal_exit)):
            if running:
                assert ask(child(sup, name), Ping(), timeout=ASK) == name
            else:
                assert sup.child(name) is None


def test_exceeding_restart_intensity_stops_the_children_and_fails_the_supervisor() -> None:
    with actor_kit() as kit:
        probe = kit.probe()
        sup = Supervisor("s", [spec("a", probe), spec("b", probe)], max_restarts=2, period=60)
        kit.spawn(lambda: sup)
        events(probe, 2)

        crash(sup, "a")
        crash(sup, "a")
        tell(child(sup, "a"), Crash())

        exit_ = kit.exits.expect_exit()
        assert exit_.failed
        assert isinstance(exit_.error, RestartIntensityExceeded)
        assert sup.child("a") is None
        assert sup.child("b") is None


def test_nested_supervisor_escalates_to_its_parent_which_restarts_it() -> None:
    with actor_kit() as kit:
        probe = kit.probe()
        inner_specs = [spec("leaf", probe)]
        root = Supervisor(
            "root",
            [
                spec("sibling", probe),
                ChildSpec("inner", lambda: Supervisor("inner", inner_specs, max_restarts=0)),
            ],
        )
        kit.spawn(lambda: root)
        events(probe, 2)
        old_inner = root.child("inner")
        old_sibling = root.child("sibling")

        first_leaf = root.find("inner/leaf")
        assert first_leaf is not None
        tell(first_leaf, Crash())

        # inner gives up at once (intensity 0) and fails; root restarts inner (one_for_one),
        # whose fresh leaf starts again. The sibling is untouched.
        assert events(probe, 2) == [("leaf", "stopped"), ("leaf", "started")]
        eventually(lambda: root.find("inner/leaf") is not None, "the new leaf is registered")
        assert root.child("inner") is not old_inner
        assert root.child("sibling") is old_sibling
        leaf = root.find("inner/leaf")
        assert leaf is not None
        assert ask(leaf, Ping(), timeout=ASK) == "leaf"


def test_a_child_failing_to_start_fails_the_supervisor_start() -> None:
    with actor_kit() as kit:
        probe = kit.probe()
        with pytest.raises(StartFailed) as raised:
            kit.spawn(lambda: Supervisor("s", [spec("a", probe), ChildSpec("bad", FailsToStart)]))
        assert isinstance(raised.value.__cause__, StartFailed)
        # The child started before the failing one was stopped again.
        assert events(probe, 2) == [("a", "started"), ("a", "stopped")]


def test_a_restart_that_fails_in_pre_start_counts_towards_the_intensity() -> None:
    attempts: list[int] = []

    class BrokenAfterFirst(Actor):
        def pre_start(self) -> None:
            attempts.append(1)
            if len(attempts) > 1:
                raise RuntimeError("store is gone")

    with actor_kit() as kit:
        sup = Supervisor(
            "s", [ChildSpec("x", crash_on(Crash, BrokenAfterFirst))], max_restarts=3, period=60
        )
        kit.spawn(lambda: sup)

        tell(child(sup, "x"), Crash())

        exit_ = kit.exits.expect_exit()
        assert isinstance(exit_.error, RestartIntensityExceeded)
        assert len(attempts) == 1 + 3  # the first start, then the 3 restarts allowed, all failed


def test_supervisor_learns_of_a_death_without_polling_and_lookups_follow_restarts() -> None:
    with actor_kit() as kit:
        probe = kit.probe()
        sup = Supervisor("s", [spec("a", probe)])
        kit.spawn(lambda: sup)
        events(probe, 1)
        first = child(sup, "a")

        tell(first, Crash())

        assert events(probe, 2) == [("a", "stopped"), ("a", "started")]
        assert not first.is_alive()
        assert ask(child(sup, "a"), Ping(), timeout=ASK) == "a"


def test_duplicate_child_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Supervisor("root", [ChildSpec("a", Actor), ChildSpec("a", Actor)])
