"""A user's event ``seq`` and handled updates outlive the session: across incarnations (the
session stopped, or was left running by an owner that lost the user) they continue where the
last one left off, on every backend. The ``seq`` is the store's (allocated with each change,
in its transaction); the handled updates are the user's stored progress."""

from __future__ import annotations

from actors import ask
from tests.sessions.support import Sessions, new_incarnation, start
from tests.support.waiting import ASK
from yabot.sessions.messages import GetState, RecordUpdate, SeenUpdate, SetPreferences


def seqs(sessions: Sessions, user_id: int) -> list[int]:
    return [event.seq for event in sessions.of(user_id)]


def test_seq_grows_across_incarnations_without_repeats_or_gaps(sessions: Sessions) -> None:
    start(sessions, 41)
    for round_ in range(3):
        for offset in range(3):
            sessions.ask(41, RecordUpdate(update_id=round_ * 10 + offset,
                                          update_kind="message"))
        sessions.ask(41, GetState())  # the tells above are handled before this answer
        new_incarnation(sessions, 41)
    start(sessions, 41)
    seen = seqs(sessions, 41)
    assert len(seen) > 9  # the 9 updates received, and what the two starts recorded
    assert seen == list(range(1, len(seen) + 1))


def test_two_live_incarnations_of_one_user_never_repeat_a_seq(sessions: Sessions) -> None:
    """An owner that lost the user while paused still runs its session when the new owner
    starts one: the store hands each seq out once, whichever session asks."""
    start(sessions, 42)
    stale = sessions.refs.pop(42)  # never stopped: as after SIGSTOP past the lease
    fresh = sessions.ref(42)
    for language in ("es", "en", "es", "en"):
        for session in (stale, fresh):
            ask(session, SetPreferences.model_validate({"preferences": {"language": language}}),
                timeout=ASK)
    seen = seqs(sessions, 42)
    assert len(seen) >= 1 + 8
    assert sorted(seen) == list(range(1, len(seen) + 1))  # no repeats, no gaps
    assert seen == sorted(seen)  # stored in seq order
    stale.stop(block=True, timeout=ASK)


def test_a_recorded_update_is_seen_by_every_later_incarnation(sessions: Sessions) -> None:
    start(sessions, 43)
    assert sessions.ask(43, SeenUpdate(update_id=900)) is False
    sessions.ask(43, RecordUpdate(update_id=900, update_kind="message"))
    assert sessions.ask(43, SeenUpdate(update_id=900)) is True
    new_incarnation(sessions, 43)
    assert sessions.ask(43, SeenUpdate(update_id=900)) is True
    assert sessions.ask(43, SeenUpdate(update_id=901)) is False
