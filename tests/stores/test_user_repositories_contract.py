"""One contract for every document and relational backend of the user repositories."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.support.threads import race
from yabot.domain.users import UserDocument, UserProfile
from yabot.stores.handles import DocumentRepositories
from yabot.stores.repositories import UserDocuments, UserProfiles
from yabot.stores.sql import SqlUserProfiles


@pytest.fixture
def documents(document_store: DocumentRepositories) -> UserDocuments:
    return document_store.users


@pytest.fixture
def profiles(engine: Engine) -> UserProfiles:
    return SqlUserProfiles(engine)


def test_unknown_user_document_is_none(documents: UserDocuments) -> None:
    assert documents.get(404) is None


def test_created_document_reads_back_equal(documents: UserDocuments) -> None:
    document = UserDocument(user_id=7, language="es", besitos=3, inventory=("rose",))
    stored, created = documents.create_if_absent(document)
    assert created is True
    assert stored == document
    assert documents.get(7) == document


def test_many_documents_read_at_once_read_as_each_does_alone(documents: UserDocuments) -> None:
    for user_id in (1, 2, 3):
        documents.create_if_absent(UserDocument(user_id=user_id, besitos=user_id,
                                                inventory=("rose",) * (user_id == 2)))
    many = documents.get_many([3, 1, 404, 2])
    assert many == {user_id: documents.get(user_id) for user_id in (1, 2, 3)}
    assert documents.get_many([]) == {}


def test_second_create_keeps_the_first_document(documents: UserDocuments) -> None:
    first = UserDocument(user_id=8, language="es")
    documents.create_if_absent(first)
    stored, created = documents.create_if_absent(UserDocument(user_id=8, language="en"))
    assert created is False
    assert stored == first
    assert documents.get(8) == first


def test_racing_creates_make_exactly_one_document(documents: UserDocuments) -> None:
    outcomes = race(4, lambda _: documents.create_if_absent(UserDocument(user_id=9))[1])
    assert sorted(outcomes) == [False, False, False, True]


def test_profile_is_inserted_once(profiles: UserProfiles) -> None:
    profile = UserProfile(user_id=5, first_name="Ana", username="ana", language_code="es")
    assert profiles.get(5) is None
    assert profiles.create_if_absent(profile) is True
    assert profiles.create_if_absent(profile.model_copy(update={"first_name": "Other"})) is False
    assert profiles.get(5) == profile
