"""Download progress: the ``download_progress`` notification's numbers, and their pacing.

``bytes_downloaded`` counts every byte of the install that is on disk, including files
kept from an earlier run and the part of a file a resume continues from, so
``overall_percent == 100 * bytes_downloaded / bytes_total`` at every report. Reports go
out when the overall percent moves by a whole point or 0.5 s have passed, and always at
the start and end of each component (so a small component still shows 0 and 100).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class DownloadProgress:
    backend: str
    component: str
    component_percent: float
    overall_percent: float
    bytes_downloaded: int
    bytes_total: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percent(done: int, total: int) -> float:
    return 100.0 if total <= 0 else round(100.0 * done / total, 2)


class ProgressTracker:
    """Counts bytes per component and decides when a report is due."""

    def __init__(
        self,
        backend: str,
        component_totals: dict[str, int],
        sink: Callable[[DownloadProgress], None] | None,
        *,
        min_interval: float = 0.5,
        min_step_percent: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.totals = dict(component_totals)
        self.done = {name: 0 for name in component_totals}
        self.sink = sink
        self.min_interval = min_interval
        self.min_step = min_step_percent
        self.clock = clock
        self.current = next(iter(component_totals), "")
        self._last: DownloadProgress | None = None
        self._last_time = float("-inf")
        self._last_overall = -100.0

    @property
    def bytes_total(self) -> int:
        return sum(self.totals.values())

    @property
    def bytes_done(self) -> int:
        return sum(self.done.values())

    def snapshot(self) -> DownloadProgress:
        return DownloadProgress(
            backend=self.backend,
            component=self.current,
            component_percent=_percent(self.done[self.current], self.totals[self.current]),
            overall_percent=_percent(self.bytes_done, self.bytes_total),
            bytes_downloaded=self.bytes_done,
            bytes_total=self.bytes_total,
        )

    def start_component(self, name: str) -> None:
        self.current = name
        self._emit(force=True)

    def add(self, nbytes: int) -> None:
        """``nbytes`` more (or, after a server restarted a file, fewer) bytes on disk."""
        self.done[self.current] += nbytes
        self._emit(force=False)

    def finish_component(self) -> None:
        self._emit(force=True)

    def _emit(self, *, force: bool) -> None:
        if self.sink is None:
            return
        report = self.snapshot()
        if report == self._last:
            return
        now = self.clock()
        due = (
            force
            or now - self._last_time >= self.min_interval
            or abs(report.overall_percent - self._last_overall) >= self.min_step
        )
        if not due:
            return
        self._last = report
        self._last_time = now
        self._last_overall = report.overall_percent
        self.sink(report)
