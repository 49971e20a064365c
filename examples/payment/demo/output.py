"""The demo's output when nobody reads it any more.

Design: ``make demo | tee demo.log`` and Ctrl-C kills ``tee`` too; the demo's
next print then raises ``BrokenPipeError``, and an exception raised while
printing in the shutdown path once skipped stopping the children. So the
console writes through :class:`GuardedOutput`: a write or flush that finds
the reader gone silences the demo (stdout and stderr go to ``/dev/null``, so
neither later prints nor Python's exit flush can fail) and calls
``on_closed``, which stops the demo. :func:`reader_gone` lets the demo notice
a closed pipe even while it prints nothing (waiting for Ctrl-C).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import sys
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["GuardedOutput", "reader_gone", "silence_output"]

_GONE = (errno.EPIPE, errno.ECONNRESET)


def silence_output() -> None:
    """Point file descriptors 1 and 2 at ``/dev/null``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def reader_gone(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe whose reading end is closed (Linux: ``POLLERR``)."""
    try:
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


class GuardedOutput:
    """A text stream for the console that turns a closed reader into ``on_closed()``.

    Args:
        stream: Where to write (``sys.stdout``).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self.closed_reader = False
        self.on_closed: Callable[[], None] | None = None

    def write(self, text: str) -> int:
        """Write ``text``, unless the reader is gone."""
        if not self.closed_reader:
            try:
                self._stream.write(text)
            except OSError as exc:
                self._gone(exc)
        return len(text)

    def flush(self) -> None:
        """Flush, unless the reader is gone."""
        if not self.closed_reader:
            try:
                self._stream.flush()
            except OSError as exc:
                self._gone(exc)

    def check(self) -> bool:
        """Whether the reader is gone (also when nothing was written); calls ``on_closed``."""
        if not self.closed_reader and reader_gone(self._stream):
            self._gone(None)
        return self.closed_reader

    def _gone(self, exc: OSError | None) -> None:
        if exc is not None and exc.errno not in _GONE:
            raise exc
        self.closed_reader = True
        silence_output()
        if self.on_closed is not None:
            self.on_closed()

    def __getattr__(self, name: str) -> Any:
        # isatty, fileno, encoding...: what rich asks of its file.
        return getattr(self._stream, name)
