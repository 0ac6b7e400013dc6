"""Start-up: from launching the gunicorn worker to its first ``/healthz`` 200, with and without
the Telegram bot, in the same run.

Each case starts a fresh gunicorn (one worker, as deployed) on loopback with its own data
directory and polls ``/healthz`` every 20 ms. The issue's target: the worker answers
``/healthz`` within 3 s on a quiet machine. ``python -c pass`` started the same way is the
baseline for the machine's own process start-up (the ratio shows what is ours).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.report import Check, Measurement, Report
from tests.support.fake_telegram import FakeTelegram
from tests.support.processes import Gunicorn

TARGET_SECONDS = 3.0
POLL = 0.02


def run(quick: bool = False) -> Report:
    rounds = 3 if quick else 7
    report = Report("startup")
    fake = FakeTelegram().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            samples: dict[str, list[float]] = {"python -c pass": [], "worker, no bot": [],
                                               "worker, bot (webhook)": []}
            for n in range(rounds):  # interleaved, so that noise hits every case alike
                samples["python -c pass"].append(_python_start())
                samples["worker, no bot"].append(_worker_start(Path(tmp) / f"api{n}", {}))
                samples["worker, bot (webhook)"].append(_worker_start(Path(tmp) / f"bot{n}", {
                    "TELEGRAM_BOT_TOKEN": "123456:bench-token", "TELEGRAM_API_URL": fake.url,
                    "BOT_WEBHOOK_URL": "https://bench.invalid/telegram/webhook",
                    "BOT_WEBHOOK_SECRET": "bench-webhook-secret",
                }))
    finally:
        fake.stop()
    baseline = statistics.median(samples["python -c pass"])
    for name, seconds in samples.items():
        median = statistics.median(seconds)
        report.measurements.append(Measurement(
            f"healthz after start: {name}", median * 1e6, max(seconds) * 1e6,
            extra={"rounds": rounds, "ratio_vs_python": round(median / baseline, 1)}))
        if name != "python -c pass":
            report.checks.append(Check(f"{name}: median seconds to /healthz", round(median, 2),
                                       f"<= {TARGET_SECONDS}", median <= TARGET_SECONDS))
    return report


def _python_start() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def _worker_start(workdir: Path, extra: dict[str, str]) -> float:
    workdir.mkdir(parents=True)
    env = {"YABOT_ENV": "test", "YABOT_DATA_DIR": str(workdir / "var"), "LOG_LEVEL": "WARNING",
           "JWT_SECRET": "bench-" + "x" * 40, **extra}
    started = time.perf_counter()
    server = Gunicorn(env, cwd=workdir)
    try:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{server.log()[-3000:]}")
            try:
                with urllib.request.urlopen(server.base_url + "/healthz", timeout=1) as resp:  # noqa: S310
                    if resp.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(POLL)
    finally:
        server.terminate()
