"""A sweep round's progress across all its studies: trials finished of the round's total, how many failed or
diverged, the time elapsed and an estimate of what is left, read from the trials' summary.json files (the slots
print nothing to the terminal) and printed as trials finish."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from suite.layout import SUMMARY
from suite.schema import FINISHED, TrialStatus, status_of

QUIET_S = 10.0  # at most one line this often while trials finish ...
HEARTBEAT_S = 60.0  # ... and one at least this often while none does


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """The trials of one round, by run directory. A trial counts as done once its summary.json says it ended
    (completed, diverged, failed) or paused at its rung, and was written after the round began: an earlier failed
    record of a trial relaunched in this round is not yet its outcome."""

    def __init__(self, run_dirs: list[Path], clock: Callable[[], float] = time.time):
        self.run_dirs, self.clock = run_dirs, clock
        self.started = clock()

    def statuses(self) -> Counter:
        counts: Counter = Counter()
        for directory in self.run_dirs:
            path = directory / SUMMARY
            try:
                fresh = path.stat().st_mtime >= self.started
            except OSError:
                continue
            status = status_of(path) if fresh else None
            if status in (*FINISHED, TrialStatus.FAILED, TrialStatus.PAUSED):
                counts[status] += 1
        return counts

    def line(self, counts: Counter | None = None) -> str:
        counts = self.statuses() if counts is None else counts
        done, total = sum(counts.values()), len(self.run_dirs)
        elapsed = self.clock() - self.started
        left = f"about {duration(elapsed / done * (total - done))} left" if 0 < done < total else ""
        parts = [
            f"{done}/{total} trials done",
            f"{counts['failed']} failed",
            f"{counts['diverged']} diverged",
            f"{duration(elapsed)} elapsed",
            left,
        ]
        return "  " + " · ".join(p for p in parts if p)

    def watch(self, stop: threading.Event, say: Callable[[str], None] = print) -> None:
        """Print a line whenever the count of done trials changes (at most every QUIET_S) and at least every
        HEARTBEAT_S, until `stop` is set; then the round's last line."""
        shown, last = -1, self.clock()
        while not stop.wait(QUIET_S):
            counts = self.statuses()
            done = sum(counts.values())
            if done != shown or self.clock() - last >= HEARTBEAT_S:
                say(self.line(counts))
                shown, last = done, self.clock()
        say(self.line())
