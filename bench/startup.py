"""Start-up: from launching the gunicorn worker to its first ``/healthz`` 200, with and without
the Telegram bot, in the same run.

Each case starts a fresh gunicorn (one worker, as deployed) on loopback with its own data
directory and polls ``/healthz`` every 20 ms. The issue's target: the worker answers
``/healthz`` within 3 s on a quiet machine. ``python -c pass`` started the same way is the
baseline for the machine's own process start-up (the ratio shows what is ours).

Wall time depends on how busy the machine is; the CPU seconds the master and worker spent
until ``/healthz`` answered (from /proc) do not, and stand in for "a quiet machine".
"""

from __future__ import annotations

import os
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
            cpu: dict[str, list[float]] = {name: [] for name in samples}
            for n in range(rounds):  # interleaved, so that noise hits every case alike
                samples["python -c pass"].append(_python_start())
                _add(samples, cpu, "worker, no bot", _worker_start(Path(tmp) / f"api{n}", {}))
                _add(samples, cpu, "worker, bot (webhook)", _worker_start(Path(tmp) / f"bot{n}", {
                    "TELEGRAM_BOT_TOKEN": "123456:bench-token", "TELEGRAM_API_URL": fake.url,
                    "BOT_WEBHOOK_URL": "https://bench.invalid/telegram/webhook",
                    "BOT_WEBHOOK_SECRET": "bench-webhook-secret",
                }))
    finally:
        fake.stop()
    baseline = statistics.median(samples["python -c pass"])
    for name, seconds in samples.items():
        median = statistics.median(seconds)
        extra: dict[str, object] = {"rounds": rounds,
                                    "ratio_vs_python": round(median / baseline, 1)}
        if cpu[name]:
            extra["cpu_seconds_median"] = round(statistics.median(cpu[name]), 2)
        report.measurements.append(Measurement(
            f"healthz after start: {name}", median * 1e6, max(seconds) * 1e6, extra=extra))
        if cpu[name]:
            spent = statistics.median(cpu[name])
            report.checks.append(Check(f"{name}: CPU seconds to /healthz (quiet machine)",
                                       round(spent, 2), f"<= {TARGET_SECONDS}",
                                       spent <= TARGET_SECONDS))
    return report


def _add(samples: dict[str, list[float]], cpu: dict[str, list[float]], name: str,
         measured: tuple[float, float]) -> None:
    samples[name].append(measured[0])
    cpu[name].append(measured[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (the gunicorn worker)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own, parent = int(stat.parent.name), int(fields[1])
        if own == pid or parent == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _python_start() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def _worker_start(workdir: Path, extra: dict[str, str]) -> tuple[float, float]:
    """Seconds until /healthz answered, and the CPU seconds spent by then."""
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
                        return (time.perf_counter() - started,
                                _cpu_seconds(server.process.pid))
            except OSError:
                pass
            time.sleep(POLL)
    finally:
        server.terminate()
