"""A progress line for long commands (demo, chaos, benches, provisioning), on standard error.

It is written only when standard error is a terminal, and rewritten in place there; otherwise
(CI, a log file, a pipe) nothing is written, so the output stays what the command prints.
Threads share the one line: each updates its own part of it.
"""

from __future__ import annotations

import shutil
import sys
import threading
from types import TracebackType
from typing import TextIO

SEPARATOR = " · "
CLEAR_TO_END = "\x1b[K"  # erases what a longer earlier line left on the terminal


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Progress:
    """One line of progress on a terminal, made of parts (`update(text, part=...)`).

    `stream` None is whatever sys.stderr is when written to. `clear()` (or leaving a `with`
    block) erases the line, before the results are printed.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._parts: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drawn = False

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._stream is None else self._stream

    @property
    def shown(self) -> bool:
        """Whether updates are written: the stream is a terminal."""
        return is_terminal(self.stream)

    def update(self, text: str, *, part: str = "") -> None:
        """Set this part's text (the line's only text, for one part) and redraw the line."""
        stream = self.stream
        if not is_terminal(stream):
            return
        with self._lock:
            self._parts[part] = " ".join(text.split())
            line = SEPARATOR.join(shown for shown in self._parts.values() if shown)
            columns = shutil.get_terminal_size().columns
            if len(line) >= columns:
                line = line[: max(0, columns - 2)] + "…"
            stream.write(f"\r{line}{CLEAR_TO_END}")
            stream.flush()
            self._drawn = True

    def done(self, part: str = "") -> None:
        """Take a finished part off the line."""
        self.update("", part=part)

    def clear(self) -> None:
        """Erase the line and forget every part."""
        with self._lock:
            self._parts.clear()
            if self._drawn and is_terminal(self.stream):
                self.stream.write(f"\r{CLEAR_TO_END}")
                self.stream.flush()
            self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.clear()


progress = Progress()  # the process's one line on standard error
