"""Alembic revisions (this file makes them a package, so they ship in the wheel)."""
