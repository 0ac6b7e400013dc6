"""YABOT: a Telegram interactive-story bot on an actor runtime."""

__version__ = "0.1.0"
