from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from tests.support.processes import REPO, clean_env
from tests.support.settings import SettingsFactory
from tests.support.waiting import COMMAND_CEILING, scaled
from yabot.errors import ConfigError


def test_defaults_need_no_server(make_settings: SettingsFactory, tmp_path: Path) -> None:
    settings = make_settings()
    assert settings.mongo.uri is None
    assert settings.redis.url is None
    assert settings.sql_url == f"sqlite:///{tmp_path / 'var' / 'yabot.sqlite3'}"
    assert (settings.api.host, settings.api.port) == ("127.0.0.1", 8000)


def test_database_url_overrides_the_sqlite_path(make_settings: SettingsFactory) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    settings = make_settings(DATABASE_URL=url, SQLITE_DATABASE_PATH="/tmp/ignored.db")
    assert settings.sql_url == url


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("API_PORT", "eighty", "valid integer"),
        ("API_PORT", "70000", "less than or equal to 65535"),
        ("YABOT_ENV", "staging", "development"),
        ("JWT_SECRET", "short", "at least 32 bytes"),
        ("TELEGRAM_API_URL", "not a url", "URL"),
        ("DATABASE_URL", "notaurl", "not a database URL"),
        ("DATABASE_URL", "mysql://root@db/yabot", "one of postgresql, postgres, sqlite"),
        ("DATABASE_URL", "postgresql://db:port/yabot", "not a database URL"),
        ("REDIS_URL", "localhost:6379", "not a Redis URL"),
        ("REDIS_URL", "redis://:pw@host:63a79/0", "not a Redis URL"),
        ("MONGODB_URI", "mongodb://", "no host"),
        ("MONGODB_URI", "http://mongo:27017", "not a MongoDB URL"),
        ("PORT", "http", "valid integer"),
    ],
)
def test_invalid_value_names_the_variable(
    make_settings: SettingsFactory, variable: str, value: str, complaint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(**{variable: value})
    message = str(caught.value)
    assert f"{variable}:" in message
    assert complaint in message


@pytest.mark.parametrize(("variable", "value"), [
    ("DATABASE_URL", "postgres://u:p@db.example:5432/yabot"),  # Heroku's spelling
    ("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/test"),
    ("DATABASE_URL", "sqlite:////var/lib/yabot/yabot.sqlite3"),
    ("REDIS_URL", "rediss://:secret@redis.example:6380/0"),
    ("REDIS_URL", "unix:///run/redis.sock"),
    ("MONGODB_URI", "mongodb+srv://u:p@cluster.example/yabot"),
])
def test_urls_of_supported_servers_are_accepted(make_settings: SettingsFactory, variable: str,
                                                value: str) -> None:
    make_settings(**{variable: value})


def test_a_platform_port_binds_every_interface(make_settings: SettingsFactory) -> None:
    assert make_settings(API_HOST="127.0.0.1", API_PORT="8000").bind == ("127.0.0.1", 8000)
    assert make_settings(PORT="5123", API_PORT="8000").bind == ("0.0.0.0", 5123)


def test_relative_paths_are_taken_from_the_starting_directory(
    make_settings: SettingsFactory, tmp_path: Path,
) -> None:
    settings = make_settings(YABOT_DATA_DIR="data", STORY_SEED_PATH="story")
    assert settings.data_dir == tmp_path / "data"  # make_settings runs in tmp_path
    assert settings.story.seed_path == tmp_path / "story"


def test_secrets_are_not_echoed_in_errors(make_settings: SettingsFactory) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(JWT_SECRET="hunter2-is-my-password")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        make_settings(DATABASE_URL="mysql://root:hunter2@db/yabot")
    assert "hunter2" not in str(caught.value)


def test_production_requires_a_jwt_secret(make_settings: SettingsFactory) -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET: required"):
        make_settings(YABOT_ENV="production", JWT_SECRET="")


def test_development_keeps_a_generated_secret_across_loads(make_settings: SettingsFactory) -> None:
    first = make_settings(JWT_SECRET="").jwt_secret()
    assert len(first) >= 32
    assert make_settings(JWT_SECRET="").jwt_secret() == first


def _env_example() -> dict[str, str]:
    """Each variable `.env.example` lists (set or commented out) and its example value."""
    listed = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        name, equals, value = line.partition("=")
        name = name.strip()
        if equals and name and not name.startswith("#"):
            listed[name] = value
    return listed


def test_env_example_and_the_fields_map_one_to_one() -> None:
    """Every field is read from a variable `.env.example` lists, and every listed variable is
    read into exactly one field: no field without documentation, no documented variable that
    nothing reads, no two fields reading one variable."""
    from yabot.settings import Settings, env_names

    read = [name for section in Settings._SECTIONS.values()
            for name in env_names(section).values()]
    assert len(read) == len(set(read))
    assert set(read) == set(_env_example())


def test_each_variable_is_read_into_its_field_and_no_other_name_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """What pydantic-settings itself reads from the environment, per section: every listed
    variable set to its own name, each field receives exactly its variable (so `env_names`,
    which `clean_env` and the error messages use, tells the truth). The names a field would
    have without its alias (``SQL_DATABASE_URL``, ``BOT_TOKEN``, ``YABOT_LOG_LEVEL``...) and
    the bare field names are read by nothing."""
    from pydantic_settings import EnvSettingsSource

    from yabot.settings import Settings, env_names

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for variable in _env_example():
        monkeypatch.setenv(variable, variable)
    for section in Settings._SECTIONS.values():
        names = env_names(section)
        read = EnvSettingsSource(section)()
        received = {_field_of(section, key): value for key, value in read.items()}
        assert received == names, section.__name__

    for name in list(os.environ):
        monkeypatch.delenv(name)
    for section in Settings._SECTIONS.values():
        prefix = str(section.model_config.get("env_prefix", "")).upper()
        for field in section.model_fields:
            for unlisted in {(prefix + field).upper(), field.upper()} - set(_env_example()):
                monkeypatch.setenv(unlisted, "unlisted")
    for section in Settings._SECTIONS.values():
        assert EnvSettingsSource(section)() == {}, section.__name__


def _field_of(section: type[BaseSettings], key: str) -> str:
    """The field a settings source's key (the field name, or its alias) belongs to."""
    for field, info in section.model_fields.items():
        if key in (field, info.validation_alias):
            return field
    raise AssertionError(f"{section.__name__} got {key!r}, which is no field of it")


def test_yabot_run_refuses_an_invalid_value_and_names_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yabot", "run"],
        env=clean_env({"API_PORT": "not-a-port", "YABOT_DATA_DIR": str(tmp_path)}),
        cwd=tmp_path, capture_output=True, text=True, timeout=scaled(COMMAND_CEILING),
        check=False,
    )
    assert result.returncode == 2
    assert "API_PORT" in result.stderr
