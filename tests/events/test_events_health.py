"""`/readyz`'s events check: a transient SQL error on the outbox count is retried by the SQL
store's guard, and one that outlasts it is a warning (events wait), not a failure."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from tests.support.settings import SettingsFactory
from yabot.events.bus import Events
from yabot.events.outbox import SqlOutbox
from yabot.health import HealthStatus
from yabot.stores.handles import RelationalRepositories, Stores
from yabot.stores.sql import SqlSubscriptions, SqlUserProfiles, sql_guard


class DroppingOutbox(SqlOutbox):
    """The outbox count loses its connection ``drops`` times, as PostgreSQL's would."""

    def __init__(self, engine: Engine, drops: int) -> None:
        super().__init__(lambda: engine)
        self.drops = drops

    def count(self) -> int:
        if self.drops:
            self.drops -= 1
            # What SQLAlchemy raises for a connection it saw drop (a "disconnect").
            raise OperationalError("SELECT count(*)", {}, Exception("server closed the connection"),
                                   connection_invalidated=True)
        return super().count()


def events_on(engine: Engine, make_settings: SettingsFactory, drops: int) -> Events:
    stores = Stores()
    stores.attach_relational(RelationalRepositories(
        engine, SqlUserProfiles(engine), SqlSubscriptions(engine), sql_guard()))
    events = Events(make_settings(), stores)
    events.outbox = DroppingOutbox(engine, drops)
    return events


def test_one_dropped_connection_is_retried_and_the_check_passes_on(
    engine: Engine, make_settings: SettingsFactory
) -> None:
    health = events_on(engine, make_settings, drops=1).health()
    assert health.status is not HealthStatus.FAIL
    assert health.details["outbox"] == 0


def test_an_outbox_unreadable_past_the_retries_is_a_warning(
    engine: Engine, make_settings: SettingsFactory
) -> None:
    health = events_on(engine, make_settings, drops=100).health()
    assert health.status is HealthStatus.WARN
    assert "outbox unreadable" in (health.output or "")
