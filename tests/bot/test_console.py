"""`yabot chat` driven through stdin in a subprocess: the real dispatcher and actors, no
Telegram."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.processes import clean_env
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import COMMAND_CEILING, scaled


def chat(tmp_path: Path, lines: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env({"YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
                     "JWT_SECRET": TEST_JWT_SECRET,
                     # Set, yet unused: the console never connects to Telegram.
                     "TELEGRAM_BOT_TOKEN": "123:never-used", "TELEGRAM_API_URL": "http://127.0.0.1:9"})
    return subprocess.run(
        [sys.executable, "-m", "yabot", "chat", *args],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=scaled(COMMAND_CEILING),
        check=False,
    )


def test_chat_talks_to_the_real_bot_and_buttons_are_picked_by_number(tmp_path: Path) -> None:
    result = chat(tmp_path, ["/start", "6", "hola"], "--language", "es", "--name", "Ana",
                  "--user-id", "31")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "bot> ¡Bienvenido, Ana! Tu historia comienza ahora." in out
    assert "    [1] 📖 Historia" in out
    assert "    [5] ⚙️ Ajustes" in out
    assert "    [6] ❓ Ayuda" in out
    assert "Te cuento una historia" in out  # button 6: help
    assert "No te he entendido" in out
    assert out.index("Bienvenido") < out.index("Te cuento") < out.index("No te he entendido")
    assert "123:never-used" not in result.stderr


def test_chat_keeps_the_user_between_sessions_and_says_so_for_a_bad_number(
    tmp_path: Path
) -> None:
    first = chat(tmp_path, ["/start"], "--user-id", "32")
    assert "Welcome, Console!" in first.stdout, first.stderr
    second = chat(tmp_path, ["/start", "9"], "--user-id", "32")
    assert second.returncode == 0, second.stderr
    assert "Welcome back, Console!" in second.stdout
    assert "(no button 9; choose 1-6)" in second.stdout


def test_chat_shows_a_stars_invoice_as_a_notice(tmp_path: Path) -> None:
    result = chat(tmp_path, ["/start", "/vip", "1"], "--user-id", "33")
    assert result.returncode == 0, result.stderr
    assert "[1] ⭐ VIP for 30 days — 250 Stars" in result.stdout
    assert "invoice: VIP for 30 days — 250 XTR" in result.stdout
    assert "Traceback" not in result.stderr
