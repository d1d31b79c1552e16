"""Output capture inside a session: bounded memory whatever a cell prints.

A cell may print gigabytes; only the head and the tail (``max_chars`` each) are ever held, and
the total is counted so the observation can say how much was cut. Text printed through
``sys.stdout``/``sys.stderr`` (and their ``.buffer``) lands here in order, interleaved as the
model sees it, and also per stream (:class:`Capture`); output written by C code or child
processes to file descriptors 1 and 2 goes to one memfd read after the cell, so it is in the
interleaved text only (splitting it would need a second memfd, which loses the order of writes
to fd 1 and fd 2 relative to each other).
"""

from __future__ import annotations

import io
import os

from datamind_ext.protocol.observation import truncate_middle


def clean_text(text: str) -> str:
    """Make printed bytes safe to put in a prompt: no NULs, no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "replace").decode("utf-8")


def compose(head: str, tail: str, total_chars: int, max_chars: int) -> tuple[str, int]:
    """Join the kept head and tail of a text of ``total_chars`` characters, ``truncate_middle`` style.

    ``head`` is the text's first ``max_chars`` characters and ``tail`` its last ``max_chars``.
    """
    if total_chars <= len(head):
        return truncate_middle(head[:total_chars], max_chars)
    if total_chars <= len(head) + len(tail):
        return truncate_middle(head + tail[len(head) + len(tail) - total_chars :], max_chars)
    # The middle was never stored: write the marker truncate_middle writes, with the true count.
    keep = max(max_chars - 48, 2)
    h, t = keep // 2, keep - keep // 2
    cut = total_chars - h - t
    return f"{head[:h]}\n... [{cut} characters cut] ...\n{tail[len(tail) - t:]}", cut


def merge(py: tuple[str, str, int], fd: tuple[str, str, int], max_chars: int) -> tuple[str, int, int]:
    """Combine Python-level and fd-level captures: (text, total chars, chars cut)."""
    head = (py[0] + fd[0])[:max_chars] if py[2] <= len(py[0]) else py[0]
    tail = (py[1] + fd[1])[-max_chars:] if fd[2] <= len(fd[1]) else fd[1]
    total = py[2] + fd[2]
    text, cut = compose(head, tail, total, max_chars)
    return clean_text(text), total, cut


class BoundedText(io.TextIOBase):
    """A text stream keeping only the first and last ``max_chars`` characters written to it."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, max_chars: int, feeds: BoundedText | None = None) -> None:
        super().__init__()
        self.max_chars = max_chars
        self.feeds = feeds  # another capture that also receives everything written here
        self.reset()

    def reset(self) -> None:
        self.head = ""
        self._tail: list[str] = []
        self._tail_len = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:  # type: ignore[override]
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        n = len(s)
        self.total += n
        if len(self.head) < self.max_chars:
            self.head += s[: self.max_chars - len(self.head)]
        piece = s[-self.max_chars :]
        self._tail.append(piece)
        self._tail_len += len(piece)
        if self._tail_len > 2 * self.max_chars:
            joined = "".join(self._tail)[-self.max_chars :]
            self._tail, self._tail_len = [joined], len(joined)
        if self.feeds is not None:
            self.feeds.write(s)
        return n

    def flush(self) -> None:
        pass

    @property
    def buffer(self) -> "_BinaryView":
        return _BinaryView(self)

    def tail(self) -> str:
        return "".join(self._tail)[-self.max_chars :]

    def text(self) -> str:
        """What was written, head + tail kept, as :func:`merge` renders it, cleaned."""
        return clean_text(compose(self.head, self.tail(), self.total, self.max_chars)[0])


class Capture:
    """A cell's Python-level output: ``stdout`` and ``stderr`` keep their own head and tail and
    both feed ``merged``, the interleaved text the model sees."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.merged = BoundedText(max_chars)
        self.stdout = BoundedText(max_chars, feeds=self.merged)
        self.stderr = BoundedText(max_chars, feeds=self.merged)

    def reset(self) -> None:
        for stream in (self.merged, self.stdout, self.stderr):
            stream.reset()


class _BinaryView(io.RawIOBase):
    """``sys.stdout.buffer``: bytes are decoded (invalid bytes replaced) into the text capture."""

    def __init__(self, text: BoundedText) -> None:
        super().__init__()
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        data = bytes(b)
        self._text.write(data.decode("utf-8", "replace"))
        return len(data)


def read_fd_capture(fd: int, max_chars: int) -> tuple[str, str, int]:
    """Head, tail and size of what was written to the memfd behind fds 1/2, then empty it."""
    size = os.fstat(fd).st_size
    if size == 0:
        return "", "", 0
    head = os.pread(fd, min(size, 4 * max_chars), 0).decode("utf-8", "replace")[:max_chars]
    start = max(0, size - 4 * max_chars)
    tail = os.pread(fd, size - start, start).decode("utf-8", "replace")[-max_chars:]
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return head, tail, size
