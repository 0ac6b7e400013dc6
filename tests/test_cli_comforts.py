"""Developer comforts of the `yabot` command: `chat` ends at once on Ctrl-C and Ctrl-D,
`token` never mints with a secret nobody else has, `story` shows the story graph."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import clean_env
from tests.support.settings import TEST_JWT_SECRET, SettingsFactory
from tests.support.waiting import eventually, exited
from yabot.cli import main
from yabot.seed import read_story


@pytest.fixture
def chat_on_a_terminal(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`yabot chat` with a pseudo-terminal as its stdin, waiting at its first prompt."""
    master, slave = pty.openpty()
    out_path = tmp_path / "chat.out"
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "yabot", "chat"], stdin=slave, stdout=out,
            stderr=subprocess.STDOUT, cwd=tmp_path,
            env=clean_env({"YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
                           "JWT_SECRET": TEST_JWT_SECRET}))
    os.close(slave)
    try:
        eventually(lambda: process.poll() is not None or "you> " in out_path.read_text(),
                   "the chat prompt", ceiling=180)  # the whole runtime starts first
        assert process.poll() is None, out_path.read_text()
        yield process, master, out_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_chat_ends_at_once_with_exit_0_on_ctrl_c(
    chat_on_a_terminal: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, _, out_path = chat_on_a_terminal
    process.send_signal(signal.SIGINT)  # what the terminal sends for Ctrl-C
    # A ceiling: it used to wait for Enter forever.
    assert exited(process, 30, out_path.read_text) == 0
    assert "Traceback" not in out_path.read_text()


def test_chat_ends_at_once_with_exit_0_on_ctrl_d(
    chat_on_a_terminal: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, master, out_path = chat_on_a_terminal
    os.write(master, b"\x04")  # Ctrl-D at the start of a line: end of input
    assert exited(process, 30, out_path.read_text) == 0
    assert "Traceback" not in out_path.read_text()


def test_token_refuses_to_make_up_a_secret_and_says_where_it_looked(
    make_settings: SettingsFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(JWT_SECRET="")  # unset: the dev secret file is the key
    assert main(["token", "--sub", "ops", "--scope", "users:read"]) == 2
    assert f"{tmp_path / 'var' / 'jwt_secret'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()  # nothing was created
    settings.jwt_secret()  # what the server does on its first start
    assert main(["token", "--sub", "ops", "--scope", "users:read"]) == 0
    assert capsys.readouterr().out.count(".") == 2  # a JWT


def test_token_without_a_scope_is_an_error(make_settings: SettingsFactory,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    make_settings()
    with pytest.raises(SystemExit) as exited:
        main(["token", "--sub", "ops"])
    assert exited.value.code == 2
    assert "--scope" in capsys.readouterr().err


def test_story_lists_every_fragment_and_choice_with_its_gates(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    make_settings()
    story = read_story()
    assert main(["story"]) == 0
    text = capsys.readouterr().out
    headers = {line.split(":")[0] for line in text.splitlines()[1:] if not line.startswith(" ")}
    assert headers == set(story.fragments)
    for fragment in story.fragments.values():
        for choice in fragment.choices:
            [line] = [line for line in text.splitlines()
                      if line.startswith(f"  {choice.choice_id} -> {choice.next_fragment}:")]
            assert ("VIP" in line) == choice.requires_vip
            if choice.requires_item is not None:
                assert f"needs item {choice.requires_item}" in line


def test_story_as_dot_has_a_node_per_fragment_and_an_edge_per_choice(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    make_settings()
    story = read_story()
    assert main(["story", "--dot", "--language", "es"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph story {")
    assert dot.rstrip().endswith("}")
    nodes = set(re.findall(r'^  "([^"]+)" \[label=', dot, re.MULTILINE))
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)" \[', dot, re.MULTILINE)
    assert nodes == set(story.fragments)
    assert sorted(edges) == sorted((f.fragment_id, c.next_fragment)
                                   for f in story.fragments.values() for c in f.choices)
    assert story.fragments[story.start].title.es in dot
