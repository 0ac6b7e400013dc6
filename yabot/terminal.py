"""Lines from standard input that a Ctrl-C can interrupt at once.

`yabot chat` reads input in a worker thread (the bot's loop must not block). A thread blocked
in ``readline`` cannot be interrupted, and asyncio waits for its worker threads before the
process may exit, so Ctrl-C used to hang until Enter. `InputLines` waits for input with
``select`` in short slices and gives up as soon as it is closed.
"""

from __future__ import annotations

import os
import select
import threading

POLL_SECONDS = 0.1  # how soon a closed reader notices; not a delay on input


class InputLines:
    """``read_line()`` returns the next line (with its newline), or ``""`` at end of input or
    once `close` was called (from any thread)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def read_line(self) -> str:
        while b"\n" not in self._buffer and not self._eof:
            if self._closed.is_set():
                return ""
            ready, _, _ = select.select([self._fd], [], [], POLL_SECONDS)
            if not ready:
                continue
            chunk = os.read(self._fd, 65536)
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True
        if self._closed.is_set():
            return ""
        line, newline, self._buffer = self._buffer.partition(b"\n")
        return (line + newline).decode(errors="replace")
