"""Local inputs that must never be read as images: FIFOs, devices, sockets.

Reading a FIFO blocks until a writer appears (forever, in a job); a character device such
as /dev/zero never ends. ``special_file_problem`` says what a path is when it is not a
regular file (checked at plan time, before anything opens it); ``read_regular_file`` opens
without blocking and checks the opened descriptor, so a path swapped for a FIFO after
planning still cannot hang a worker.
"""
from __future__ import annotations

import os
import stat

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


class NotRegularFileError(ValueError):
    """An input that is not a regular file; permanent: reading it again cannot help."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def special_file_problem(path: str) -> str | None:
    """Why ``path`` (symlinks followed) is not a readable regular file, or None. A path that
    cannot be stat'ed is left to the read, which names the OS error."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode):
        return None
    return f"{os.path.basename(path)} is {_kind(st.st_mode)}, not a regular file: skipped, never read"


def read_regular_file(path: str) -> bytes:
    """The bytes of a local regular file. Opened with O_NONBLOCK (a FIFO opens at once instead
    of waiting for a writer) and checked with fstat before the first read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"{os.path.basename(path)} is {_kind(mode)}, not a regular file: not read")
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        return f.read()
