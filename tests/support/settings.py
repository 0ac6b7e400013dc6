"""Settings as tests build them: the JWT secret every test signs with, the factory type."""

from __future__ import annotations

from collections.abc import Callable

from yabot.settings import Settings

TEST_JWT_SECRET = "test-secret-" + "x" * 40

#: ``make_settings(**env)`` (the fixture in tests/conftest.py): Settings read from ``env``.
SettingsFactory = Callable[..., Settings]
