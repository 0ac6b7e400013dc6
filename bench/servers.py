"""Which gunicorn worker serves the API: the same hello-world Falcon resource under each.

- ``gthread``: gunicorn's threaded worker, ``API_THREADS`` threads (what YABOT shipped
  before issue 19): the baseline.
- ``asgi + falcon.asgi``: gunicorn's own asyncio worker with Falcon's ASGI app (an ``async``
  responder; YABOT's asks would go through ``ask_async``).
- ``asgi + BufferedWsgi``: gunicorn's asyncio worker with the unchanged Falcon WSGI app run
  on ``API_THREADS`` threads once each request is read whole (`yabot.api.asgi`): what YABOT
  ships.

Each server is a separate gunicorn (one worker) on loopback, all started first; load comes
from `bench.api`'s closed-loop generator (16 keep-alive connections), the servers taking
turns round after round (interleaved, so a noisy neighbour hits all alike). Then, per server,
twice as many slow clients as threads trickle a request head at one byte per 0.5 s while a
probe asks for the hello-world resource: how long the probe waits (capped).

Last, YABOT itself (`yabot.serving`, the runtime in the worker) under gthread and as shipped,
each on its own copy of one SQLite file with `STATE_USERS` users whose sessions are all live
(a sweep first): ``GET /user/{id}/state`` with a token, interleaved rounds again — what the
thread hand-off through the event loop costs a real route.

    python -m bench servers            # or: make bench BENCH_ARGS=servers
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi

from bench.report import Check, Measurement, Report
from yabot.api.asgi import BufferedWsgi

REPO = Path(__file__).resolve().parents[1]
THREADS = 4
HELLO = "/hello"
SLOW_CLIENTS = 2 * THREADS
#: How long the stall probe waits for an answer before calling it stalled (seconds).
PROBE_CAP = 10.0


class HelloWorld:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"hello": "world"}


class HelloWorldAsync:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"hello": "world"}


def _wsgi_app() -> falcon.App[Any, Any]:
    app: falcon.App[Any, Any] = falcon.App()
    app.add_route(HELLO, HelloWorld())
    return app


# The apps gunicorn imports in its worker (``bench.servers:NAME``).
wsgi_app = _wsgi_app()
asgi_app = falcon.asgi.App()
asgi_app.add_route(HELLO, HelloWorldAsync())
buffered_app = BufferedWsgi(_wsgi_app())
# The pool starts no thread before the first request: made here, it is made in the worker.
buffered_app.configure(THREADS, 64 * 1024, 30.0)

#: name → (worker class, app)
SERVERS = {
    "gthread": ("gthread", "bench.servers:wsgi_app"),
    "asgi + falcon.asgi": ("asgi", "bench.servers:asgi_app"),
    "asgi + BufferedWsgi": ("asgi", "bench.servers:buffered_app"),
}
BASELINE = "gthread"
SHIPPED = "asgi + BufferedWsgi"


STATE_USERS = 2_000
STATE_PATH = "/user/{user_id}/state"


def serve_yabot(worker: str) -> None:
    """YABOT as `yabot.serving` configures it, under ``worker`` (``gthread``: the WSGI app on
    gunicorn's threads, as before issue 19; ``asgi``: as shipped)."""
    from yabot.logs import configure_logging
    from yabot.serving import application, asgi_application, gunicorn_config, run_gunicorn
    from yabot.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    options = gunicorn_config(settings)
    app: Any = asgi_application
    if worker == "gthread":
        options = {k: v for k, v in options.items() if not k.startswith("asgi_")}
        options.update(worker_class="gthread", threads=settings.api.threads)
        app = application
    run_gunicorn(options, app)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(worker: str, app: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
            "--worker-class", worker, "--no-control-socket", "--log-level", "warning",
            "--chdir", str(REPO)]
    args += ["--threads", str(THREADS)] if worker == "gthread" else ["--asgi-loop", "asyncio",
                                                                     "--asgi-lifespan", "off"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        return subprocess.Popen([*args, app], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("a bench server exited early")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{HELLO}",
                                        timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("a bench server did not become ready")


def _run_load(port: int, seconds: float, warmup: float, path: str = HELLO, token: str = "",
              users: int = 1) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.api", "load", str(port), path, token, str(seconds),
         str(warmup), str(users)],
        cwd=REPO, capture_output=True, check=True,
        timeout=seconds + warmup + 60 if seconds else 60 + users / 20,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    result: dict[str, Any] = json.loads(output.stdout)
    return result


def _stalled_probe(port: int) -> float:
    """Seconds a GET of the hello-world resource waits while `SLOW_CLIENTS` clients trickle
    a request head (`PROBE_CAP` when it got no answer by then)."""
    stop = threading.Event()
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(SLOW_CLIENTS)]

    def trickle() -> None:
        head = b"GET /hello HTTP/1.1\r\nHost: b\r\nX-Slow: " + b"s" * 1000
        for byte in range(len(head)):
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(head[byte:byte + 1])
            if stop.wait(0.5):
                return

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(1.5)  # a few bytes each: every slow client has been accepted
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{HELLO}",
                                        timeout=PROBE_CAP) as resp:
                resp.read()
            return time.perf_counter() - started
        except OSError:
            return PROBE_CAP
    finally:
        stop.set()
        trickler.join()
        for sock in sockets:
            sock.close()


def _measurement(name: str, results: list[dict[str, Any]]) -> Measurement:
    latencies = sorted(x for result in results for x in result["latencies"])
    seconds = sum(result["seconds"] for result in results)
    rates = [len(result["latencies"]) / result["seconds"] for result in results]
    return Measurement(
        name, median_us=statistics.median(latencies) * 1e6,
        p99_us=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e6,
        per_second=len(latencies) / seconds,
        extra={"requests": len(latencies), "rounds": len(results),
               "req/s per round": [round(rate) for rate in rates],
               "non_200": sum(len(result["errors"]) for result in results)},
    )


def _yabot_state(rounds: int, seconds: float, warmup: float, users: int,
                 tmp: Path) -> dict[str, list[dict[str, Any]]]:
    """Interleaved state-route rounds against YABOT under gthread and as shipped."""
    import secrets
    import shutil

    from bench.api import _create_users, _env
    from bench.api import _wait_ready as _wait_yabot

    secret = secrets.token_urlsafe(48)
    _create_users(_env(tmp / "gthread", _free_port(), secret), users)
    shutil.copytree(tmp / "gthread", tmp / "asgi")
    ports = {worker: _free_port() for worker in ("gthread", "asgi")}
    envs = {worker: _env(tmp / worker, port, secret) for worker, port in ports.items()}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for worker, env in envs.items():
            with (tmp / f"yabot-{worker}.log").open("wb") as log:
                processes[worker] = subprocess.Popen(
                    [sys.executable, "-m", "bench.servers", "serve-yabot", worker], env=env,
                    cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
        for worker, process in processes.items():
            _wait_yabot(f"http://127.0.0.1:{ports[worker]}", process)
        token = subprocess.run(
            [sys.executable, "-m", "yabot", "token", "--sub", "bench", "--scope", "users:read",
             "--ttl", "1h"],
            env=envs["gthread"], cwd=tmp, capture_output=True, check=True, text=True,
        ).stdout.strip()
        for port in ports.values():  # every user's session live
            _run_load(port, 0, 0, STATE_PATH, token, users)
        results: dict[str, list[dict[str, Any]]] = {worker: [] for worker in ports}
        for _ in range(rounds):
            for worker, port in ports.items():
                results[worker].append(_run_load(port, seconds, warmup, STATE_PATH, token,
                                                 users))
        return results
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(60)


def run(quick: bool = False) -> Report:
    rounds, seconds, warmup = (2, 2.0, 0.5) if quick else (5, 6.0, 1.0)
    report = Report("servers")
    with tempfile.TemporaryDirectory(prefix="yabot-bench-servers-") as tmp:
        ports = {name: _free_port() for name in SERVERS}
        processes = {name: _start(worker, app, ports[name], Path(tmp) / f"{n}.log")
                     for n, (name, (worker, app)) in enumerate(SERVERS.items())}
        try:
            for name, process in processes.items():
                _wait_ready(ports[name], process)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
            for _ in range(rounds):
                for name in SERVERS:
                    results[name].append(_run_load(ports[name], seconds, warmup))
            stalls = {name: _stalled_probe(ports[name]) for name in SERVERS}
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(30)
        state = _yabot_state(rounds, seconds, warmup, 500 if quick else STATE_USERS, Path(tmp))
    measured = {name: _measurement(f"GET /hello, {name}", results[name]) for name in SERVERS}
    base = measured[BASELINE]
    for name, m in measured.items():
        m.extra["req/s ratio to gthread"] = round((m.per_second or 0) / (base.per_second or 1), 3)
        m.extra["p99 ratio to gthread"] = round((m.p99_us or 0) / (base.p99_us or 1), 3)
        m.extra[f"GET /hello with {SLOW_CLIENTS} slow heads (s, cap {PROBE_CAP:.0f})"] = round(
            stalls[name], 3)
        report.measurements.append(m)
    shipped = measured[SHIPPED]
    throughput = (shipped.per_second or 0) / (base.per_second or 1)
    state_gthread = _measurement("GET /user/{id}/state, YABOT under gthread", state["gthread"])
    state_asgi = _measurement("GET /user/{id}/state, YABOT as shipped", state["asgi"])
    state_ratio = (state_asgi.per_second or 0) / (state_gthread.per_second or 1)
    state_p99 = (state_asgi.p99_us or 0) / (state_gthread.p99_us or 1)
    state_asgi.extra["req/s ratio to gthread"] = round(state_ratio, 3)
    state_asgi.extra["p99 ratio to gthread"] = round(state_p99, 3)
    report.measurements += [state_gthread, state_asgi]
    report.checks += [
        Check(f"{SHIPPED} req/s / gthread req/s", round(throughput, 3), ">= 0.9",
              throughput >= 0.9),
        Check(f"{SHIPPED}: answered with {SLOW_CLIENTS} slow heads",
              float(stalls[SHIPPED] < PROBE_CAP), "== 1", stalls[SHIPPED] < PROBE_CAP),
        Check("state route: shipped req/s / gthread req/s", round(state_ratio, 3), ">= 0.9",
              state_ratio >= 0.9),
        Check("state route: shipped p99 / gthread p99", round(state_p99, 3), "<= 1.5",
              state_p99 <= 1.5),
        Check("every answer 200", float(not any(m.extra["non_200"] for m in report.measurements)),
              "== 1", not any(m.extra["non_200"] for m in report.measurements)),
    ]
    return report


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-yabot"]:
        serve_yabot(sys.argv[2])
    else:
        raise SystemExit("usage: python -m bench.servers serve-yabot gthread|asgi")
