"""Why the process could not start, in one line, and an exit code per kind of cause.

A platform restarting a process that only an operator can fix (bad configuration, a schema
behind the code) wastes its time and buries the reason in the log; a distinct exit code lets
it, and the operator, tell the cases apart:

=====  ===========================================================================
code   meaning
=====  ===========================================================================
0      stopped on request (SIGTERM, Ctrl-C)
1      `yabot migrate` / `yabot seed` found a problem they name (see their help)
2      configuration: a setting is missing or invalid (fix the environment)
3      the actor tree gave up while running (the log says why; restarting may help)
4      a dependency is unreachable: the SQL database or MongoDB did not answer
5      a schema is not the code's: run ``yabot migrate`` (the release phase)
=====  ===========================================================================

This module imports nothing heavy, so the command line and gunicorn's configuration can use
it before the application is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from yabot.errors import ConfigError, SchemaMismatch, StoreUnreachable


class ExitCode(IntEnum):
    OK = 0
    PROBLEM_FOUND = 1
    CONFIGURATION = 2
    GAVE_UP = 3
    DEPENDENCY_UNREACHABLE = 4
    SCHEMA_MISMATCH = 5


_PARTS = {"sql": "SQL database", "mongo": "MongoDB", "documents": "MongoDB"}


@dataclass(frozen=True)
class StartupFailure:
    """One cause of a failed start: the part that failed, why, and what to do about it."""

    part: str
    reason: str
    remedy: str
    exit_code: ExitCode

    def line(self) -> str:
        """The whole story in one line (multi-line reasons are joined with ``; ``)."""
        reason = "; ".join(part.strip() for part in self.reason.splitlines() if part.strip())
        return f"yabot cannot start: {self.part}: {reason} -- {self.remedy}"


def diagnose(error: BaseException) -> StartupFailure | None:
    """The cause of ``error`` (searched along its ``__cause__``/``__context__`` chain) when it
    is one an operator fixes; None for anything else (a bug: keep its traceback)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        failure = _known(current)
        if failure is not None:
            return failure
        current = current.__cause__ or current.__context__
    return None


def _known(error: BaseException) -> StartupFailure | None:
    if isinstance(error, ConfigError):
        return config_failure(error)
    if isinstance(error, StoreUnreachable):
        part = _PARTS.get(error.store, error.store)
        return StartupFailure(
            part, f"not reachable ({error.reason})",
            f"check that the server runs and that its URL ({_url_variable(error.store)}) "
            "points at it", ExitCode.DEPENDENCY_UNREACHABLE)
    if isinstance(error, SchemaMismatch):
        part = _PARTS.get(error.store, "database")
        return StartupFailure(part, str(error).split(": run `yabot migrate`")[0],
                              "run `yabot migrate` (the Procfile's release phase) with this "
                              "version, then start again", ExitCode.SCHEMA_MISMATCH)
    return None


def config_failure(error: ConfigError) -> StartupFailure:
    reason = str(error).removeprefix("invalid configuration:").strip()
    return StartupFailure("settings", reason,
                          "fix these variables in the environment or .env (see .env.example)",
                          ExitCode.CONFIGURATION)


def _url_variable(store: str) -> str:
    return "MONGODB_URI" if store in ("mongo", "documents") else "DATABASE_URL"
