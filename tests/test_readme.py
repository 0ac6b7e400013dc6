"""The README is tested: "Try it" runs as written on a fresh clone, its Python examples run as
doctests, and what it points at is in the repository (and not gitignored)."""

from __future__ import annotations

import doctest
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.processes import REPO, clean_env, free_port
from tests.support.waiting import scaled

README = REPO / "README.md"


def _sections() -> str:
    return README.read_text()


def try_it_blocks(text: str) -> list[str]:
    """The shell blocks of "Try it", in order (from its heading line to the next heading)."""
    start = text.index("\nTry it")
    end = text.index("\n#", start)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.DOTALL)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def _tracked() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    return set(listed) | {str(parent) for name in listed for parent in Path(name).parents}


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    """A clone of the committed tree. Its `.venv` is made the way the Makefile would find an
    interrupted first run (interpreter only, no stamp), seeing this venv's packages through a
    ``.pth`` line so that `make` installs yabot without downloading every dependency again."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True,
                   timeout=scaled(120))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(clone / ".venv")],
                   check=True, timeout=scaled(120))
    purelib = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "yabot_test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    return clone


def test_try_it_runs_in_order_on_a_fresh_clone(fresh_clone: Path, tmp_path: Path) -> None:
    [script] = try_it_blocks(_sections())
    port = free_port()
    out_path = tmp_path / "try-it.out"
    with out_path.open("wb") as out:
        shell = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script], cwd=fresh_clone, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=clean_env({"API_PORT": str(port), "PATH": os.environ.get("PATH", "")}))
        try:
            code = shell.wait(scaled(600))
        finally:
            os.killpg(shell.pid, signal.SIGTERM)  # `make run &` is still serving: stop it
    output = out_path.read_text()
    assert code == 0, output
    assert "bot> Welcome, Console!" in output
    assert '"status": "pass"' in output
    # The last curl: the console user's state (curl adds no newline; server lines interleave).
    state, _ = json.JSONDecoder().raw_decode(output[output.index('{"document"'):])
    assert state["profile"]["first_name"] == "Console"
    assert state["document"]["user_id"] == 1


def test_python_examples_run_as_doctests() -> None:
    blocks = python_blocks(_sections())
    assert blocks, "the README has Python examples"
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner()
    for number, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, {}, f"README python block {number}", str(README), 0)
        assert test.examples, f"python block {number} is not a doctest (>>> lines)"
        result = runner.run(test)
        assert result.failed == 0, f"python block {number} failed (see the output above)"


def test_what_the_readme_points_at_is_in_the_repository() -> None:
    text = _sections()
    tracked = _tracked()
    top_level = {name.split("/")[0] for name in tracked} - {"."}  # ./var: made at run time
    links = [target for target in re.findall(r"\]\(([^)\s]+)\)", text)
             if not re.match(r"^(https?:|mailto:|#)", target)]
    paths = [path for path in re.findall(r"`([A-Za-z0-9_./-]+)`", text)
             if path.startswith("../") or (path.split("/")[0] in top_level and "/" in path)]
    missing = [path for path in links + paths if not _resolves(path, tracked)]
    assert missing == [], "the README points outside the repository or at untracked files"


def _resolves(path: str, tracked: set[str]) -> bool:
    """A tracked file or folder; ``pkg/module.name`` counts when ``pkg/module.py`` is one."""
    plain = path.rstrip("/").split("#")[0]
    attribute_of_module = re.sub(r"\.[A-Za-z_]\w*$", ".py", plain)
    return plain in tracked or (attribute_of_module != plain
                                and attribute_of_module in tracked)


def test_the_license_is_the_one_setup_cfg_declares() -> None:
    assert "license = MIT" in (REPO / "setup.cfg").read_text()
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
