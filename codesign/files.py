"""The one way codesign writes a file: a path that cannot be written is a one-line error.

Commands, the search's artifacts and the reports all write through ``write_text`` /
``write_bytes``, so an unwritable ``--json``/``--out``/``--plot`` path exits with code 2 and
a message naming the path, never a traceback or exit code 1.  Each file is written to a
temporary name beside it and renamed into place, so a reader never sees half a file.
"""
from __future__ import annotations

import os
from pathlib import Path

from hwmodels.errors import CodesignError


def write_text(path: str | Path, text: str, what: str = "output") -> Path:
    return _write(Path(path), text.encode(), what)


def write_bytes(path: str | Path, data: bytes, what: str = "output") -> Path:
    return _write(Path(path), data, what)


def _write(path: Path, data: bytes, what: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not path.is_file():     # /dev/stdout, a FIFO: write through
            path.write_bytes(data)
            return path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)          # all or nothing: a failed write leaves the old file as it was
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise CodesignError(f"cannot write {what} {path}: {e.strerror or e} (choose a writable path)") from None
    return path
