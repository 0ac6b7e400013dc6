"""`python -m bench [--quick] [name ...]`: run benchmarks, print a table, write bench/results/."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from pathlib import Path

from bench.report import Report

BENCHMARKS = ["runtime", "stores", "events", "api", "servers", "bot", "faults", "startup",
              "scale"]
RESULTS = Path(__file__).parent / "results"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def print_report(report: Report) -> None:
    print(f"\n== {report.benchmark}")
    print(f"{'case':<44}{'median µs':>12}{'p99 µs':>12}{'per s':>14}")
    for m in report.measurements:
        print(f"{m.name:<44}{_fmt(m.median_us):>12}{_fmt(m.p99_us):>12}{_fmt(m.per_second):>14}")
        for key, value in m.extra.items():
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                print(f"    {key}:")  # lines of text (a profile): one per line
                print("\n".join(f"      {line}" for line in value))
            else:
                print(f"    {key}: {value}")
    for check in report.checks:
        verdict = "PASS" if check.passed else "MISS"
        print(f"  [{verdict}] {check.name} = {check.value} (target {check.target})")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("names", nargs="*", help=f"any of {BENCHMARKS} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHMARKS}")
    RESULTS.mkdir(exist_ok=True)
    missed = 0
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        report: Report = module.run(quick=args.quick)
        print_report(report)
        missed += sum(not c.passed for c in report.checks)
        payload = {"machine": platform.node(), "python": platform.python_version(),
                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **report.as_dict()}
        (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    print(f"\nJSON written to {RESULTS}/")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
