"""The one way codesign writes a file: a path that cannot be written is a one-line error.

Commands, the search's artifacts and the reports all write through ``write_text`` /
``write_bytes``, so an unwritable ``--json``/``--out``/``--plot`` path exits with code 2 and
a message naming the path, never a traceback or exit code 1.
"""
from __future__ import annotations

from pathlib import Path

from hwmodels.errors import CodesignError


def write_text(path: str | Path, text: str, what: str = "output") -> Path:
    return _write(Path(path), text.encode(), what)


def write_bytes(path: str | Path, data: bytes, what: str = "output") -> Path:
    return _write(Path(path), data, what)


def _write(path: Path, data: bytes, what: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as e:
        raise CodesignError(f"cannot write {what} {path}: {e.strerror or e} (choose a writable path)") from None
    return path
