"""The seed story and shop: read from `yabot/narrative/` (package data) or ``STORY_SEED_PATH``,
checked whole, then stored.

``yabot seed`` calls `load_seed`; the coordinator calls `seed_if_empty` at start when
``STORY_SEED_ON_START`` is true. Loading is idempotent (fragments and items are replaced by
id), and nothing is written unless the whole story holds together: every choice leads to a
fragment that exists, every required item is in the shop, the start exists, and every
fragment can be reached from it. Problems raise `InvalidStory`, naming each one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from yabot.domain.items import Item
from yabot.domain.narrative import Choice, Fragment
from yabot.errors import InvalidStory
from yabot.settings import Settings
from yabot.stores.handles import Stores

log = structlog.get_logger("yabot.seed")

#: The story shipped inside the package (package data, so an installed wheel has it too);
#: ``STORY_SEED_PATH`` points at an operator's own folder instead.
DEFAULT_SEED_PATH = Path(__file__).resolve().parent / "narrative"
STORY_FILE = "story.toml"
ITEMS_FILE = "items.toml"


@dataclass(frozen=True)
class Story:
    """A checked story: its start, its fragments by id and the shop's items."""

    start: str
    fragments: dict[str, Fragment]
    items: dict[str, Item]

    @property
    def endings(self) -> list[str]:
        return [fid for fid, fragment in self.fragments.items() if fragment.ending]


@dataclass(frozen=True)
class SeedReport:
    start: str
    fragments: int
    items: int
    endings: tuple[str, ...]


def read_story(path: Path | None = None, start: str | None = None) -> Story:
    """Read and check the story in ``path`` (a folder with story.toml and items.toml).
    ``start`` overrides the file's start fragment. Raises `InvalidStory`."""
    folder = path or DEFAULT_SEED_PATH
    story_data = _read_toml(folder / STORY_FILE)
    items_file = folder / ITEMS_FILE
    items_data = _read_toml(items_file) if items_file.exists() else {}
    items = _items(items_data.get("item", []))
    fragments = _fragments(story_data.get("fragment", []))
    first = start or story_data.get("start")
    if not isinstance(first, str) or not first:
        raise InvalidStory(f"{folder / STORY_FILE}: no start fragment (start = \"…\")")
    return check_story(first, fragments, items)


def check_story(start: str, fragments: Iterable[Fragment], items: Iterable[Item]) -> Story:
    """The story if it holds together, choices to VIP fragments marked VIP; else
    `InvalidStory` listing every problem (a dangling choice names fragment, choice, target)."""
    by_id: dict[str, Fragment] = {}
    problems: list[str] = []
    for fragment in fragments:
        if fragment.fragment_id in by_id:
            problems.append(f"fragment {fragment.fragment_id} is defined twice")
        by_id[fragment.fragment_id] = fragment
    catalogue: dict[str, Item] = {}
    for item in items:
        if item.sku in catalogue:
            problems.append(f"item {item.sku} is defined twice")
        catalogue[item.sku] = item
    if start not in by_id:
        problems.append(f"the start fragment {start} does not exist")
    for fragment in by_id.values():
        seen: set[str] = set()
        for choice in fragment.choices:
            where = f"fragment {fragment.fragment_id}, choice {choice.choice_id}"
            if choice.choice_id in seen:
                problems.append(f"{where}: the choice id is used twice")
            seen.add(choice.choice_id)
            if choice.next_fragment not in by_id:
                problems.append(f"{where}: points to {choice.next_fragment}, which does not "
                                "exist")
            if choice.requires_item is not None and choice.requires_item not in catalogue:
                problems.append(f"{where}: needs item {choice.requires_item}, which the shop "
                                "does not sell")
    if start in by_id:
        reached = _reachable(start, by_id)
        problems += [f"fragment {fid} cannot be reached from {start}"
                     for fid in by_id if fid not in reached]
    if problems:
        raise InvalidStory("the story does not hold together: " + "; ".join(problems))
    marked = {fid: _mark_vip_choices(fragment, by_id) for fid, fragment in by_id.items()}
    return Story(start=start, fragments=marked, items=catalogue)


def load_seed(stores: Stores, path: Path | None = None, start: str | None = None) -> SeedReport:
    """Check the story in ``path`` (default: `DEFAULT_SEED_PATH`), then store every item and
    fragment (replacing those with the same id). Idempotent. Raises `InvalidStory` before
    writing anything when the story does not hold together."""
    story = read_story(path, start)
    documents = stores.documents
    for item in story.items.values():
        documents.items.put(item)
    # The start last: `seed_if_empty` reads a present start as "the story is loaded".
    for fragment in sorted(story.fragments.values(), key=lambda f: f.fragment_id == story.start):
        documents.fragments.put(fragment)
    report = SeedReport(start=story.start, fragments=len(story.fragments),
                        items=len(story.items), endings=tuple(story.endings))
    log.info("seed story loaded", fragments=report.fragments, items=report.items,
             start=report.start)
    return report


def seed_if_empty(stores: Stores, path: Path | None = None, start: str = "start"
                  ) -> SeedReport | None:
    """`load_seed` unless the store already has the start fragment (never overwrites an
    edited story); None when it did nothing."""
    if stores.documents.fragments.get(start) is not None:
        return None
    return load_seed(stores, path, start)


def seed_at_start(stores: Stores, settings: Settings) -> SeedReport | None:
    """What the coordinator runs at start: `seed_if_empty` when ``STORY_SEED_ON_START`` is
    true. A story that does not hold together stops the start (`InvalidStory`); the default
    folder missing (an installed wheel has no ``config/``) is only logged."""
    if not settings.story.seed_on_start:
        return None
    path = settings.story.seed_path
    if path is None and not (DEFAULT_SEED_PATH / STORY_FILE).exists():
        log.warning("no seed story to load: set STORY_SEED_PATH", looked_in=str(DEFAULT_SEED_PATH))
        return None
    return seed_if_empty(stores, path, settings.story.start_fragment)


def seed_command(settings: Settings, path: Path | None, *, check: bool = False,
                 print_line: Any = print) -> int:
    """The body of ``yabot seed``: check the story, then (unless ``check``) start the stores
    (connecting and migrating as the app does), load it and stop them. Exit code 0 / 1."""
    from actors import spawn
    from yabot.stores.actors import stores_supervisor

    folder = path or settings.story.seed_path
    story = read_story(folder, settings.story.start_fragment)
    if check:
        print_line(f"story ok: {len(story.fragments)} fragments, {len(story.items)} items, "
                   f"endings: {', '.join(story.endings)}")
        return 0
    stores = Stores()
    root = spawn(lambda: stores_supervisor(settings, stores))
    try:
        report = load_seed(stores, folder, settings.story.start_fragment)
    finally:
        root.stop(block=True, timeout=30)
    print_line(f"seeded: {report.fragments} fragments, {report.items} items, start "
               f"{report.start}, endings: {', '.join(report.endings)}")
    return 0


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InvalidStory(f"{file}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidStory(f"{file}: not valid TOML ({exc})") from None


def _fragments(entries: list[dict[str, Any]]) -> list[Fragment]:
    fragments = []
    for index, entry in enumerate(entries):
        name = entry.get("id", f"#{index + 1}")
        try:
            fragments.append(Fragment(
                fragment_id=entry.get("id"), title=entry.get("title", ""),
                text=entry.get("text"), vip_only=entry.get("vip", False),
                choices=tuple(Choice.model_validate({
                    "choice_id": choice.get("id"), "label": choice.get("label"),
                    "next_fragment": choice.get("next"),
                    "cost_besitos": choice.get("cost", 0),
                    "reward_besitos": choice.get("reward", 0),
                    "requires_item": choice.get("item"),
                    "requires_vip": choice.get("vip", False),
                }) for choice in entry.get("choice", [])),
            ))
        except ValidationError as exc:
            raise InvalidStory(f"fragment {name}: {_first_problems(exc)}") from None
    return fragments


def _items(entries: list[dict[str, Any]]) -> list[Item]:
    items = []
    for index, entry in enumerate(entries):
        name = entry.get("sku", f"#{index + 1}")
        try:
            names = entry.get("name")
            descriptions = entry.get("description", "")
            items.append(Item.model_validate({
                "sku": entry.get("sku"),
                "name": names.get("en") if isinstance(names, dict) else names,
                "description": (descriptions.get("en", "") if isinstance(descriptions, dict)
                                else descriptions),
                "names": names, "descriptions": descriptions or None,
                "price_besitos": entry.get("price", 0), "vip_only": entry.get("vip", False),
            }))
        except ValidationError as exc:
            raise InvalidStory(f"item {name}: {_first_problems(exc)}") from None
    return items


def _first_problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(entry)'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)[:3]
    )


def _reachable(start: str, fragments: dict[str, Fragment]) -> set[str]:
    reached, frontier = {start}, [start]
    while frontier:
        for choice in fragments[frontier.pop()].choices:
            if choice.next_fragment in fragments and choice.next_fragment not in reached:
                reached.add(choice.next_fragment)
                frontier.append(choice.next_fragment)
    return reached


def _mark_vip_choices(fragment: Fragment, fragments: dict[str, Fragment]) -> Fragment:
    choices = tuple(
        choice.model_copy(update={"requires_vip": True})
        if fragments[choice.next_fragment].vip_only and not choice.requires_vip else choice
        for choice in fragment.choices
    )
    return fragment.model_copy(update={"choices": choices})
