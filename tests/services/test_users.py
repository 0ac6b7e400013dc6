"""UserService: a user is created in both stores or, after a crash between them, repaired."""

from __future__ import annotations

import pytest

from tests.support.faults import Failing, InjectedFault, inject_relational
from yabot.domain.users import TelegramIdentity
from yabot.errors import UserNotFound
from yabot.services.users import UserService
from yabot.sessions.messages import Preferences
from yabot.stores.handles import Stores

ANA = TelegramIdentity(user_id=5, first_name="Ana", username="ana", language_code="es")


def test_create_user_writes_both_stores_once(stores: Stores) -> None:
    users = UserService(stores)
    assert users.create_user(ANA) is True
    assert users.create_user(ANA) is False
    state = users.get_user_context(5)
    assert state.profile is not None
    assert (state.profile.first_name, state.document.language) == ("Ana", "es")


def test_a_crash_between_the_two_writes_is_repaired_on_next_access(stores: Stores) -> None:
    profiles = stores.relational.profiles
    inject_relational(stores, profiles=Failing(profiles, "create_if_absent", times=1))
    users = UserService(stores)
    with pytest.raises(InjectedFault):
        users.create_user(ANA)
    assert stores.documents.users.get(5) is not None  # the first write happened
    assert profiles.get(5) is None  # the second did not

    state = users.get_user_context(5)  # the next access repairs it

    assert state.profile is not None
    assert profiles.get(5) == state.profile
    assert state.profile.language_code == "es"


def test_start_again_after_the_crash_completes_the_user(stores: Stores) -> None:
    profiles = stores.relational.profiles
    inject_relational(stores, profiles=Failing(profiles, "create_if_absent", times=1))
    users = UserService(stores)
    with pytest.raises(InjectedFault):
        users.create_user(ANA)
    assert users.create_user(ANA) is True  # the profile, written last, is what completes it
    profile = profiles.get(5)
    assert profile is not None
    assert profile.username == "ana"


def test_preferences_are_stored_on_the_document(stores: Stores) -> None:
    users = UserService(stores)
    users.create_user(ANA)
    state = users.set_preferences(5, Preferences(language="en", notifications=False))
    assert state.preferences == Preferences(language="en", notifications=False)
    assert users.get_user_context(5).preferences == state.preferences
    with pytest.raises(UserNotFound):
        users.set_preferences(6, Preferences(language="en"))
