"""A progress line on stderr, for long runs, only when stderr is a terminal.

The CLI hands a Progress on stderr to the API (Options.progress), which passes it to the pass and the
verification; without one, or when stderr is not a terminal, nothing is shown.
The line appears only after `delay` seconds, so small models never show it, and is cleared when a phase ends.
"""
from __future__ import annotations

import time
from typing import Optional, TextIO


class Progress:
    def __init__(self, stream: Optional[TextIO] = None, delay: float = 1.0, width: int = 30):
        self.stream = stream if stream is not None and stream.isatty() else None
        self.delay, self.width = delay, width
        self.start = time.monotonic()
        self.shown = False

    def update(self, label: str, done: int, total: int) -> None:
        if self.stream is None or total <= 0 or time.monotonic() - self.start < self.delay:
            return
        filled = self.width * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rfc2conv: {label} [{bar}] {done}/{total}")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.stream is not None and self.shown:
            self.stream.write("\r" + " " * (self.width + 60) + "\r")
            self.stream.flush()
            self.shown = False
