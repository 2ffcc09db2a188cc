"""Files replaced whole or not at all: written beside the target, flushed to disk, renamed.

The file ends with the permissions a plain ``open(path, "w")`` would give it: an existing file
keeps its mode, a new one gets ``0o666`` less the umask (``mkstemp`` alone would leave 0600).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from kpdev.host.errors import UsageError


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would leave: the existing file's, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def refuse_existing(path: str | os.PathLike, force: bool, what: str = "file") -> None:
    """UsageError when ``path`` exists and ``force`` is not given: results are not overwritten
    silently."""
    if not force and os.path.lexists(path):
        raise UsageError(
            f"{what} {path} exists; pass --force to overwrite it, or choose another file"
        )


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Replace ``path`` with what ``write(f)`` puts into a fresh binary file ``f``.

    A crash or an exception before the rename leaves the old file as it was, and no temporary
    file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
