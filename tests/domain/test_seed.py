"""The seed story: the shipped one holds together; a broken one fails the load, named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.stores import stores_on
from yabot.cli import main
from yabot.errors import InvalidStory
from yabot.seed import DEFAULT_SEED_PATH, load_seed, read_story, seed_if_empty
from yabot.settings import Settings

SHIPPED_STORY = (DEFAULT_SEED_PATH / "story.toml").read_text()


def test_the_shipped_story_has_what_the_issue_asks_for() -> None:
    story = read_story()
    fragments = story.fragments.values()
    assert len(story.fragments) >= 12
    assert len(story.endings) >= 2
    assert sum(fragment.vip_only for fragment in fragments) >= 2
    choices = [choice for fragment in fragments for choice in fragment.choices]
    assert any(choice.cost_besitos for choice in choices)
    assert any(choice.requires_item for choice in choices)
    for fragment in fragments:
        assert fragment.text.es
        assert fragment.text.en
        assert all(choice.label.es and choice.label.en for choice in fragment.choices)
    # A choice leading to a VIP fragment is marked VIP by the loader.
    door = story.fragments["hall"].choice("velvet_door")
    assert door is not None
    assert door.requires_vip is True


def write_story(tmp_path: Path, story: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "story.toml").write_text(story)
    (tmp_path / "items.toml").write_text((DEFAULT_SEED_PATH / "items.toml").read_text())
    return tmp_path


def test_a_choice_pointing_nowhere_fails_the_load_and_names_it(tmp_path: Path) -> None:
    broken = SHIPPED_STORY.replace('next = "library"', 'next = "cellar"')
    with pytest.raises(InvalidStory, match="fragment hall, choice library: points to cellar"):
        read_story(write_story(tmp_path, broken))


def test_a_missing_item_and_an_unreachable_fragment_are_named(tmp_path: Path) -> None:
    broken = SHIPPED_STORY.replace('item = "lantern"', 'item = "torch"').replace(
        'next = "street"', 'next = "gate"')
    with pytest.raises(InvalidStory) as raised:
        read_story(write_story(tmp_path, broken))
    assert "fragment garden, choice light: needs item torch" in str(raised.value)
    assert "fragment street cannot be reached from start" in str(raised.value)


def test_a_broken_story_writes_nothing(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    broken = write_story(tmp_path / "story", SHIPPED_STORY.replace('next = "hall"',
                                                                   'next = "nowhere"'))
    with stores_on("sqlite", request, tmp_path) as stores:
        with pytest.raises(InvalidStory):
            load_seed(stores, broken)
        assert stores.documents.fragments.get("start") is None
        assert stores.documents.items.all() == []


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
def test_loading_twice_changes_nothing(backend: str, request: pytest.FixtureRequest,
                                       tmp_path: Path) -> None:
    with stores_on(backend, request, tmp_path) as stores:
        report = load_seed(stores)
        first = [stores.documents.fragments.get(fid) for fid in read_story().fragments]
        assert load_seed(stores) == report
        assert [stores.documents.fragments.get(fid) for fid in read_story().fragments] == first
        assert [item.sku for item in stores.documents.items.all()] == [
            "lantern", "rose", "velvet_mask"]
        assert seed_if_empty(stores) is None  # a story is there: never overwritten


@pytest.mark.usefixtures("in_process_cli")
def test_yabot_seed_loads_the_story_and_check_touches_nothing(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    assert main(["seed", "--check"]) == 0
    assert "story ok: 14 fragments" in capsys.readouterr().out
    assert not settings.data_dir.exists()
    assert main(["seed"]) == 0
    assert main(["seed"]) == 0
    assert "seeded: 14 fragments, 3 items" in capsys.readouterr().out
    broken = write_story(tmp_path / "broken", SHIPPED_STORY.replace('next = "hall"',
                                                                    'next = "nowhere"'))
    assert main(["seed", "--path", str(broken)]) == 1
    assert "points to nowhere" in capsys.readouterr().err
