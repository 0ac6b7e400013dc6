"""Cluster fixtures: the local Redis with a key prefix per test."""

from tests.events.conftest import local_redis  # noqa: F401 (a fixture)
