"""Progress of long work in units a researcher counts (stages, checkpoints, model x benchmark
pairs), for the log: ``3/5 done, 4m10s elapsed, ETA 2m47s``. The ETA is the mean time of the
units done so far times the units left; units reused from an earlier attempt do not count. Units
of very different sizes (the stages of a run: data takes seconds, SFT hours) get no ETA
(``eta=False``): a mean over them would be a wrong promise."""

from __future__ import annotations

import time


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    def __init__(self, total: int, eta: bool = True):
        self.total, self.done, self.timed, self.eta = total, 0, 0, eta
        self.start = time.monotonic()

    def step(self, timed: bool = True) -> str:
        """Count one unit done (``timed=False``: reused, took no time); the line to log."""
        self.done += 1
        self.timed += timed
        elapsed = time.monotonic() - self.start
        line = f"{self.done}/{self.total} done, {duration(elapsed)} elapsed"
        left = self.total - self.done
        if left and self.timed and self.eta:
            line += f", ETA {duration(elapsed / self.timed * left)}"
        return line
