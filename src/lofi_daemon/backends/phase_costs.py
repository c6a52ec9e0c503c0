"""Time estimates for the big-model backends, phase by phase (text, diffusion, decode).

A backend's ``PhaseCosts`` gives the seconds each phase should take for a request's shape;
the job turns that plan into a percent and an ETA. ``PhaseClock`` times the phases as the
pipeline reports them, and each finished run corrects the next plan, so the estimate becomes
this machine's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .base import Progress

PHASES = ("text", "diffusion", "decode")


@dataclass
class PhaseCosts:
    """Seconds per phase: a subclass's ``work(*shape)``, spread over the CPU threads, times a
    correction learned from finished runs."""

    device: str
    threads: int = 1  # the CPU's compute threads (torch.get_num_threads() when loaded)
    correction: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 1.0), kw_only=True)

    # Two threads on two cores do about 1.8 cores' work (docs/benchmarks.md, quiet-machine runs).
    PARALLEL_EFFICIENCY = 0.8

    def work(self, *shape: int) -> dict[str, float]:
        """Each phase for a request of this shape: core-seconds on the CPU, seconds elsewhere."""
        raise NotImplementedError

    def base(self, *shape: int) -> dict[str, float]:
        """Uncorrected seconds of each phase."""
        parallel = 1.0 + (max(1, self.threads) - 1) * self.PARALLEL_EFFICIENCY if self.device == "cpu" else 1.0
        return {phase: seconds / parallel for phase, seconds in self.work(*shape).items()}

    def estimate(self, *shape: int) -> dict[str, float]:
        base = self.base(*shape)
        return {phase: base[phase] * self.correction[phase] for phase in PHASES}

    def plan(self, *shape: int) -> list[tuple[str, float]]:
        return [(phase, max(seconds, 1e-6)) for phase, seconds in self.estimate(*shape).items()]

    def learn(self, measured: dict[str, float], *shape: int) -> None:
        base = self.base(*shape)
        for phase, seconds in measured.items():
            if seconds > 0 and base.get(phase, 0) > 0:
                # Smoothed, so one disturbed run (another process on the CPU) does not dominate.
                self.correction[phase] = 0.5 * self.correction[phase] + 0.5 * seconds / base[phase]


class PhaseClock:
    """Forwards pipeline progress to the job and times each phase."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._phase: str | None = None
        self._started = time.monotonic()
        self.seconds: dict[str, float] = {}

    def __call__(self, phase: str, current: int, total: int) -> None:
        now = time.monotonic()
        if phase != self._phase:
            if self._phase is not None:
                self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._started
            self._phase, self._started = phase, now
        self._progress.update(phase, current, total)

    def finish(self) -> None:
        if self._phase is not None:
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + time.monotonic() - self._started
            self._phase = None
