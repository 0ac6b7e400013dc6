"""Fill the mongomock gaps the production code runs into, in the tests only.

mongomock 4.3 raises NotImplementedError for ``create_collection(validator=…)`` and for
``list_collections()``, and its ``Database.command`` takes no positional value, so
``db.command("collMod", name, validator=…)`` fails. Here collection options are remembered per
database store (not enforced: mongomock never validates documents — validator rejections are
tested on a real MongoDB only, via the ``mongodb`` marker).

`install()` patches `mongomock.database.Database` once per process; it changes nothing for
calls mongomock already supports.

Two projection bugs are patched on `mongomock.collection.Collection` as well:

- ``find_one_and_update(..., projection=p, return_document=AFTER)`` re-reads the updated
  document through the *filter* when ``p`` drops ``_id``, so a guarded update (``besitos >=
  n``, ``ledger_keys != k``) that no longer matches its own filter afterwards returns None.
  Here the update runs without a projection (mongomock then re-reads by ``_id``) and ``p`` is
  applied to what it returns.
- every projection is popped from and put back into the caller's dict while it is applied,
  so threads sharing one projection constant race on it; here each call gets its own copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import mongomock
from mongomock.collection import Collection
from mongomock.database import Database
from pymongo.errors import CollectionInvalid, OperationFailure

_OPTIONS = "_yabot_collection_options"
_installed = False


def _options(db: Any) -> dict[str, dict[str, Any]]:
    store = db._store
    if not hasattr(store, _OPTIONS):
        setattr(store, _OPTIONS, {})
    found: dict[str, dict[str, Any]] = getattr(store, _OPTIONS)
    return found


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    original_create: Callable[..., Any] = Database.create_collection
    original_command: Callable[..., Any] = Database.command

    def create_collection(self: Any, name: str, **kwargs: Any) -> Any:
        if name in self.list_collection_names():
            raise CollectionInvalid(f"collection {name} already exists")
        collection = original_create(self, name)
        _options(self)[name] = dict(kwargs)
        return collection

    def command(self: Any, command: Any, value: Any = None, **kwargs: Any) -> Any:
        if command == "collMod":
            if value not in self.list_collection_names():
                raise OperationFailure(f"ns does not exist: {value}", code=26)
            _options(self).setdefault(value, {}).update(kwargs)
            return {"ok": 1.0}
        return original_command(self, command, **kwargs)

    def list_collections(self: Any, filter: Any = None, **_: Any) -> Iterator[dict[str, Any]]:
        wanted = (filter or {}).get("name")
        for name in self.list_collection_names():
            if wanted is None or wanted == name:
                yield {"name": name, "type": "collection",
                       "options": dict(_options(self).get(name, {}))}

    def drop_collection(self: Any, name_or_collection: Any, session: Any = None) -> None:
        name = getattr(name_or_collection, "name", name_or_collection)
        _options(self).pop(name, None)
        original_drop(self, name_or_collection, session)

    original_drop: Callable[..., Any] = Database.drop_collection
    # Patched on the class (setattr: mypy rightly refuses method assignment), once.
    setattr(Database, "create_collection", create_collection)  # noqa: B010
    setattr(Database, "command", command)  # noqa: B010
    setattr(Database, "list_collections", list_collections)  # noqa: B010
    setattr(Database, "drop_collection", drop_collection)  # noqa: B010
    _install_projection_fixes()


def _install_projection_fixes() -> None:
    original_copy_only_fields: Callable[..., Any] = Collection._copy_only_fields
    original_find_one_and_update: Callable[..., Any] = Collection.find_one_and_update

    def copy_only_fields(self: Any, doc: Any, fields: Any, container: Any) -> Any:
        own = dict(fields) if isinstance(fields, dict) else fields
        return original_copy_only_fields(self, doc, own, container)

    def find_one_and_update(self: Any, filter: Any, update: Any, projection: Any = None,
                            *args: Any, **kwargs: Any) -> Any:
        found = original_find_one_and_update(self, filter, update, None, *args, **kwargs)
        if found is None or projection is None:
            return found
        return self._copy_only_fields(found, projection, dict)

    setattr(Collection, "_copy_only_fields", copy_only_fields)  # noqa: B010
    setattr(Collection, "find_one_and_update", find_one_and_update)  # noqa: B010


def client() -> Any:
    """A mongomock client with the gaps filled."""
    install()
    return mongomock.MongoClient(tz_aware=True)
