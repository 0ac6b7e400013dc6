"""Package layering: what lies below the sessions never imports them (no cycles upward)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

YABOT = Path(__file__).resolve().parents[1] / "yabot"
#: Packages (or modules) the sessions are built on; none of them may import ``yabot.sessions``.
BELOW_SESSIONS = ["domain", "services", "coordinator", "stores", "events", "views.py"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("below", BELOW_SESSIONS)
def test_nothing_below_the_sessions_imports_them(below: str) -> None:
    root = YABOT / below
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    assert files
    upward = {str(path.relative_to(YABOT)): sorted(m for m in imported_modules(path)
                                                   if m.startswith("yabot.sessions"))
              for path in files}
    assert {path: mods for path, mods in upward.items() if mods} == {}
