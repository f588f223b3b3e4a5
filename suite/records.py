"""Writing run records: atomic files and the append-only metrics log (their layout is suite/layout.py's)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _jsonable(value: Any) -> Any:
    """Non-finite floats become null (strict JSON has no NaN/inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _file_mode() -> int:
    """What open() would give a new file under this process's umask (mkstemp alone gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write(file)` into a temp file in the same directory, fsync, rename: a reader (or a process started after a
    kill) sees the old or the new file, never part of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file (metrics.jsonl), whole lines only: a half-written last line is left out."""
    try:
        lines = path.read_text().split("\n")[:-1]
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    return rows


class MetricsLog:
    """metrics.jsonl: one JSON object per line, appended and flushed row by row. A resumed trial starts from the
    rows its checkpoint holds (written atomically), dropping any logged after that checkpoint."""

    def __init__(self, path: Path | None, rows: list[dict] = ()):
        """`path` None: a log that writes nothing (the data-parallel ranks but rank 0)."""
        self._file = None
        if path is not None:
            atomic_write_text(path, "".join(json.dumps(_jsonable(r), allow_nan=False) + "\n" for r in rows))
            self._file = open(path, "a")

    def append(self, row: dict) -> None:
        if self._file:
            self._file.write(json.dumps(_jsonable(row), allow_nan=False) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file:
            self._file.close()
