"""One contract for `UserProgress` (event seq, handled updates) on every document backend."""

from __future__ import annotations

import threading

import pytest

from yabot.stores.handles import DocumentRepositories
from yabot.stores.repositories import UserProgress


@pytest.fixture
def progress(document_store: DocumentRepositories) -> UserProgress:
    return document_store.progress


def test_an_unknown_user_has_handled_no_updates(progress: UserProgress) -> None:
    assert progress.handled_updates(404) == []


def test_reserved_blocks_follow_each_other_and_never_overlap(progress: UserProgress) -> None:
    assert progress.reserve_seq(1, 10) == 10
    assert progress.reserve_seq(1, 10) == 20
    assert progress.reserve_seq(2, 5) == 5  # per user


def test_racing_reservations_hand_out_every_seq_once(progress: UserProgress,
                                                     document_store: DocumentRepositories
                                                     ) -> None:
    if document_store.backend == "mongo":
        pytest.skip("mongomock's find_one_and_update is not atomic across threads "
                    "(DESIGN.md); one user's reservations are serial in its session")
    highs: list[int] = []
    barrier = threading.Barrier(4)

    def reserve() -> None:
        barrier.wait()
        for _ in range(10):
            highs.append(progress.reserve_seq(3, 4))

    threads = [threading.Thread(target=reserve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(highs) == list(range(4, 161, 4))


def test_unused_seqs_are_given_back_only_while_nobody_reserved_after_them(
    progress: UserProgress
) -> None:
    high = progress.reserve_seq(4, 64)
    assert progress.release_seq(4, high, used=3) is True
    assert progress.reserve_seq(4, 64) == 3 + 64  # continues right after the last used one
    progress.reserve_seq(4, 64)  # another owner reserved meanwhile
    assert progress.release_seq(4, 3 + 64, used=10) is False
    assert progress.reserve_seq(4, 1) == 3 + 64 + 64 + 1


def test_handled_updates_keep_the_newest_window_in_order(progress: UserProgress) -> None:
    for update_id in range(100, 110):
        progress.record_update(5, update_id, window=4)
    assert progress.handled_updates(5) == [106, 107, 108, 109]
    progress.record_update(5, 107, window=4)  # recorded again: moves to the end, once
    assert progress.handled_updates(5) == [106, 108, 109, 107]


def test_recording_updates_keeps_the_seq_and_reserving_keeps_the_updates(
    progress: UserProgress
) -> None:
    progress.record_update(6, 1, window=8)
    assert progress.reserve_seq(6, 2) == 2
    progress.record_update(6, 2, window=8)
    assert progress.handled_updates(6) == [1, 2]
    assert progress.reserve_seq(6, 1) == 3
