"""One contract for `UserProgress` (handled updates) on every document backend."""

from __future__ import annotations

import pytest

from yabot.stores.handles import DocumentRepositories
from yabot.stores.repositories import UserProgress


@pytest.fixture
def progress(document_store: DocumentRepositories) -> UserProgress:
    return document_store.progress


def test_an_unknown_user_has_handled_no_updates(progress: UserProgress) -> None:
    assert progress.handled_updates(404) == []


def test_handled_updates_keep_the_newest_window_in_order(progress: UserProgress) -> None:
    for update_id in range(100, 110):
        progress.record_update(5, update_id, window=4)
    assert progress.handled_updates(5) == [106, 107, 108, 109]
    progress.record_update(5, 107, window=4)  # recorded again: moves to the end, once
    assert progress.handled_updates(5) == [106, 108, 109, 107]


def test_windows_are_per_user(progress: UserProgress) -> None:
    progress.record_update(6, 1, window=8)
    progress.record_update(7, 2, window=8)
    progress.record_update(6, 3, window=8)
    assert progress.handled_updates(6) == [1, 3]
    assert progress.handled_updates(7) == [2]
