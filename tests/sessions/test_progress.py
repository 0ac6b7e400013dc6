"""A user's event ``seq`` and handled updates outlive the session: across incarnations (the
session stopped, or crashed) it continues where the last one left off, on every backend."""

from __future__ import annotations

from actors import ask
from tests.sessions.support import ASK, Sessions, start
from yabot.sessions.messages import GetState, RecordUpdate, SeenUpdate, SetPreferences
from yabot.sessions.progress import SEQ_BLOCK


def seqs(sessions: Sessions, user_id: int) -> list[int]:
    return [event.seq for event in sessions.of(user_id)]


def new_incarnation(sessions: Sessions, user_id: int) -> None:
    """Stop the user's session (as passivation or a lost partition does); the next message
    starts another."""
    sessions.refs.pop(user_id).stop(block=True, timeout=ASK)


def test_seq_grows_across_incarnations_without_repeats_or_gaps_after_clean_stops(
    sessions: Sessions
) -> None:
    start(sessions, 41)
    for round_ in range(3):
        for _ in range(3):
            sessions.ask(41, RecordUpdate(update_id=round_ * 10, update_kind="message"))
        sessions.ask(41, GetState())  # the tells above are handled before this answer
        new_incarnation(sessions, 41)
    start(sessions, 41)
    seen = seqs(sessions, 41)
    assert seen == list(range(1, len(seen) + 1))
    assert len(seen) == 1 + 9 + 1


def test_after_a_crash_seq_continues_above_the_reserved_block(sessions: Sessions) -> None:
    start(sessions, 42)
    # The first incarnation never stops cleanly (as after kill -9, or a partition lost while
    # paused): it gives nothing back, and the next one must not reuse its block.
    crashed = sessions.refs.pop(42)
    before = seqs(sessions, 42)
    fresh = sessions.ref(42)
    ask(fresh, SetPreferences.model_validate({"preferences": {"language": "es"}}), timeout=ASK)
    after = seqs(sessions, 42)[len(before):]
    assert after
    assert min(after) > max(before)
    assert min(after) == SEQ_BLOCK + 1  # the first incarnation's block is never reused
    crashed.stop(block=True, timeout=ASK)


def test_a_recorded_update_is_seen_by_every_later_incarnation(sessions: Sessions) -> None:
    start(sessions, 43)
    assert sessions.ask(43, SeenUpdate(update_id=900)) is False
    sessions.ask(43, RecordUpdate(update_id=900, update_kind="message"))
    assert sessions.ask(43, SeenUpdate(update_id=900)) is True
    new_incarnation(sessions, 43)
    assert sessions.ask(43, SeenUpdate(update_id=900)) is True
    assert sessions.ask(43, SeenUpdate(update_id=901)) is False
