"""The Telegram bot end to end: webhook → Dispatcher → handler → session actor → stores → reply
recorded by the fake Bot API, for many distinct users; against a bare aiogram bot (its handler
replies at once) behind the same gunicorn worker, Falcon app and webhook, in the same run.

The app runs in gunicorn (one asgi worker, as deployed) on loopback; this process runs the
fake Bot API and the load: ``CLIENTS`` threads, each on a keep-alive connection, post one
update per user. Latency is from posting the update to the fake receiving the reply.
Cases:
- ``/help`` from 10,000 distinct users: the handler asks the user's session (started for the
  user, reading the stores) for the user's language and replies. The target applies here.
- ``/start`` from new users: first contact, the session creates the user in both stores.
  Store-bound (SQLite writes); reported for what it is, with its ratio, not held to the target.
- ``/help`` paced at ``PACED_RATE`` updates/s (below both bots' capacity): the latency of one
  update when nothing queues. The unpaced cases post as fast as the webhook accepts (it
  answers before handling), so their latencies are mostly time spent waiting in line.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.report import Check, Measurement, Report, summarise
from tests.support.fake_telegram import FakeTelegram
from tests.support.processes import REPO, Gunicorn
from yabot.bot.webhook import WEBHOOK_PATH

SECRET = "bench-webhook-secret"  # noqa: S105 (a throwaway for loopback)
TOKEN = "123456:bench-token"  # noqa: S105 (the fake accepts any)
CLIENTS = 32
TARGET_RATIO = 0.40
PACED_RATE = 100.0
BARE_CONFIG = Path(__file__).with_name("bot_bare_gunicorn.py")


def run(quick: bool = False) -> Report:
    users = 2_000 if quick else 10_000
    new_users = 1_000 if quick else 2_000
    report = Report("bot")
    fake = FakeTelegram().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paced_users = 500 if quick else 1_000
            bare, bare_paced = _measure(
                "bare aiogram bot: reply at once", Path(tmp) / "bare", fake,
                [("/help", users, 10_000_000, None), ("/help", paced_users, 11_000_000,
                                                      PACED_RATE)],
                config=BARE_CONFIG)
            helps, starts, paced = _measure(
                "yabot", Path(tmp) / "yabot", fake,
                [("/help", users, 20_000_000, None), ("/start", new_users, 30_000_000, None),
                 ("/help", paced_users, 40_000_000, PACED_RATE)],
            )
    finally:
        fake.stop()
    assert bare.per_second is not None
    assert helps.per_second is not None
    assert starts.per_second is not None
    start_ratio = round(starts.per_second / bare.per_second, 3)
    starts.extra["ratio_vs_bare"] = start_ratio
    report.measurements += [bare, helps, starts, bare_paced, paced]
    ratio = helps.per_second / bare.per_second
    report.checks.append(Check("yabot /help updates/s / bare aiogram updates/s", round(ratio, 3),
                               f">= {TARGET_RATIO}", ratio >= TARGET_RATIO))
    return report


def _measure(name: str, workdir: Path, fake: FakeTelegram,
             cases: list[tuple[str, int, int, float | None]], config: Path | None = None
             ) -> list[Measurement]:
    workdir.mkdir(parents=True)
    env = {
        "YABOT_ENV": "test", "YABOT_DATA_DIR": str(workdir / "var"), "LOG_LEVEL": "WARNING",
        "JWT_SECRET": "bench-" + "x" * 40, "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake.url, "BOT_WEBHOOK_URL": "https://bench.invalid" + WEBHOOK_PATH,
        "BOT_WEBHOOK_SECRET": SECRET, "ACTORS_MAX_SESSIONS": "30000",
        "BOT_MAX_PENDING_UPDATES": "100000", "API_THREADS": "16",
        "PYTHONPATH": str(REPO),  # the baseline's app lives in bench/
    }
    server = Gunicorn(env, cwd=workdir, **({"config": config} if config else {}))
    results = []
    try:
        server.wait_ready()
        _run_case(server.port, fake, "/help", list(range(1, 101)), None)  # warm-up
        for text, users, base, rate in cases:
            ids = list(range(base, base + users))
            sent_at, replied_at, elapsed, statuses = _run_case(server.port, fake, text, ids,
                                                               rate)
            latencies = [(replied_at[uid] - sent_at[uid]) * 1e6 for uid in ids
                         if uid in replied_at]
            label = f"{name}: {text}" + (f" paced {rate:.0f}/s" if rate else "")
            summary = summarise(label, latencies, users=users, clients=CLIENTS,
                                non_200=sum(s != 200 for s in statuses),
                                unanswered=users - len(latencies), seconds=round(elapsed, 2))
            results.append(Measurement(summary.name, summary.median_us, summary.p99_us,
                                       per_second=len(latencies) / elapsed,
                                       extra=summary.extra))
    finally:
        code = server.terminate()
        if code != 0:
            raise RuntimeError(f"gunicorn exited {code}:\n{server.log()[-3000:]}")
    return results


def _run_case(port: int, fake: FakeTelegram, text: str, ids: list[int], rate: float | None
              ) -> tuple[dict[int, float], dict[int, float], float, list[int]]:
    """Post ``text`` once per user, as fast as possible or at ``rate`` per second."""
    sent_at: dict[int, float] = {}
    first_call = len(fake.calls)
    chunks = [ids[n::CLIENTS] for n in range(CLIENTS)]
    started = time.perf_counter()
    interval = CLIENTS / rate if rate else 0.0

    def client(n: int) -> list[int]:
        offset = n / rate if rate else 0.0
        return _post_all(port, text, chunks[n], sent_at, started + offset, interval)

    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [s for part in pool.map(client, range(CLIENTS)) for s in part]
    replied_at = _wait_replies(fake, set(ids), first_call, timeout=120)
    elapsed = (max(replied_at.values()) if replied_at else time.perf_counter()) - started
    return sent_at, replied_at, elapsed, statuses


def _wait_replies(fake: FakeTelegram, wanted: set[int], seen: int, timeout: float
                  ) -> dict[int, float]:
    """Poll (reading only new calls) until every user in ``wanted`` got a reply."""
    replied: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(replied) < len(wanted) and time.monotonic() < deadline:
        calls = fake.calls[seen:]
        seen += len(calls)
        for call in calls:
            chat = int(call.params.get("chat_id") or 0) if call.method == "sendMessage" else 0
            if chat in wanted:
                replied.setdefault(chat, call.at)
        time.sleep(0.02)
    return replied




def _post_all(port: int, text: str, ids: list[int], sent_at: dict[int, float], first: float,
              interval: float) -> list[int]:
    """One client on one keep-alive connection; with an ``interval``, the i-th post waits
    until ``first + i * interval``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    statuses = []
    try:
        for i, uid in enumerate(ids):
            if interval:
                time.sleep(max(0.0, first + i * interval - time.perf_counter()))
            statuses.append(_post(connection, text, uid, sent_at))
    finally:
        connection.close()
    return statuses


def _post(connection: http.client.HTTPConnection, text: str, user_id: int,
          sent_at: dict[int, float]) -> int:
    body = json.dumps({"update_id": user_id, "message": {
        "message_id": 1, "date": int(time.time()), "text": text,
        "chat": {"id": user_id, "type": "private", "first_name": "Bench"},
        "from": {"id": user_id, "is_bot": False, "first_name": "Bench", "language_code": "en"},
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
    }}).encode()
    sent_at[user_id] = time.perf_counter()
    connection.request("POST", WEBHOOK_PATH, body=body, headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
    response = connection.getresponse()
    response.read()
    return response.status


