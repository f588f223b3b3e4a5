"""Reading run records and the append-only metrics log (their layout is suite/layout.py's; files are written
atomically through workloads/files.py)."""

from __future__ import annotations

import json
from pathlib import Path

from workloads.files import atomic_write_text, jsonable


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
            atomic_write_text(path, "".join(json.dumps(jsonable(r), allow_nan=False) + "\n" for r in rows))
            self._file = open(path, "a")

    def append(self, row: dict) -> None:
        if self._file:
            self._file.write(json.dumps(jsonable(row), allow_nan=False) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file:
            self._file.close()
