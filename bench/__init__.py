"""Benchmarks: `make bench` runs every module in BENCHMARKS, prints a table, writes JSON."""
