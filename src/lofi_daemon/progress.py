"""Weighted job progress: phases with relative costs -> a monotone percent and an ETA.

A backend plans its phases (``[("text", 1), ("diffusion", 30), ("decode", 10)]``) and
reports ``current`` of ``total`` units in each. The percent is the cost-weighted share
done, so it tracks the wall time spent when the weights match what the phases really cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class ProgressSnapshot:
    percent: float
    phase: str
    current_step: int
    total_steps: int
    eta_sec: float | None


class PhaseProgress:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._phases: list[tuple[str, float]] = [("generate", 1.0)]
        self._percent = 0.0

    def plan(self, phases: Sequence[tuple[str, float]]) -> None:
        total = sum(max(0.0, float(w)) for _name, w in phases)
        if not phases or total <= 0:
            raise ValueError("a progress plan needs at least one phase with a positive weight")
        self._phases = [(name, max(0.0, float(w)) / total) for name, w in phases]

    def update(self, phase: str, current: int, total: int) -> ProgressSnapshot:
        done_before = 0.0
        weight = 0.0
        for name, w in self._phases:
            if name == phase:
                weight = w
                break
            done_before += w
        else:  # an unplanned phase adds nothing but keeps what was reached
            done_before = self._percent / 100.0
        fraction = done_before + weight * (min(max(current, 0), total) / total if total > 0 else 0.0)
        self._percent = max(self._percent, min(100.0, 100.0 * fraction))
        return ProgressSnapshot(round(self._percent, 1), phase, current, total, self.eta_sec())

    @property
    def percent(self) -> float:
        return self._percent

    def elapsed(self) -> float:
        return self._clock() - self._started

    def eta_sec(self) -> float | None:
        done = self._percent / 100.0
        if done <= 0.0:
            return None
        return round(self.elapsed() * (1.0 - done) / done, 1)
