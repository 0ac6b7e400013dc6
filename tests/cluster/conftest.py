"""Cluster tests: real processes on PostgreSQL + Redis (fixtures in tests/conftest.py and
tests/support/nodes.py)."""
