"""Fault injection for store-backed tests: a repository that fails on chosen calls."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from yabot.stores.handles import Stores


class InjectedFault(RuntimeError):
    """What an injected failure raises, so a test can tell it from a real one."""


class Failing:
    """Wraps a repository; ``method`` raises `InjectedFault` while ``when(*args)`` is true
    (``times`` at most, None: always). Everything else passes through."""

    def __init__(self, inner: Any, method: str, when: Any = None, times: int | None = None
                 ) -> None:
        self._inner = inner
        self._method = method
        self._when = when or (lambda *args, **kwargs: True)
        self._times = times
        self.raised = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != self._method:
            return attribute

        def failing(*args: Any, **kwargs: Any) -> Any:
            if self._when(*args, **kwargs) and (self._times is None or self.raised < self._times):
                self.raised += 1
                raise InjectedFault(f"injected failure of {name}")
            return attribute(*args, **kwargs)

        return failing


def inject_documents(stores: Stores, **repositories: Any) -> None:
    """Replace some document repositories of ``stores`` (e.g. ``ledger=Failing(...)``)."""
    stores.attach_documents(replace(stores.documents, **repositories))


def inject_relational(stores: Stores, **repositories: Any) -> None:
    stores.attach_relational(replace(stores.relational, **repositories))
