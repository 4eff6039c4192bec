"""Writing a file so that no reader ever sees half of it, however many processes write it at once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE = 0o600  # readable by this user only (libpq ignores a password file others can read)
SHARED = 0o644


def replace_file(path: Path, content: bytes, mode: int) -> Path:
    """Write `content` to `path` with `mode`, replacing it atomically. The partial file is this process's
    own (mkstemp), so processes sharing a data dir never write into each other's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(partial, mode)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path
