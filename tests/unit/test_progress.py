"""Progress percent: weighted by phase cost, monotone, close to the true share of wall time."""

from __future__ import annotations

import time

import pytest

from lofi_daemon.backends.base import CancelToken
from lofi_daemon.backends.procedural import render
from lofi_daemon.progress import PhaseProgress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_percent_is_the_cost_weighted_share_of_phases_done():
    p = PhaseProgress(FakeClock())
    p.plan([("text", 1), ("steps", 8), ("decode", 1)])
    assert p.update("text", 1, 1).percent == pytest.approx(10.0)
    assert p.update("steps", 4, 8).percent == pytest.approx(50.0)
    assert p.update("decode", 1, 2).percent == pytest.approx(95.0)
    assert p.update("decode", 2, 2).percent == pytest.approx(100.0)


def test_percent_never_goes_backwards():
    p = PhaseProgress(FakeClock())
    p.plan([("a", 1), ("b", 1)])
    assert p.update("b", 1, 2).percent == 75.0
    assert p.update("a", 1, 2).percent == 75.0  # a late report of an earlier phase
    assert p.update("unplanned", 1, 1).percent == 75.0


def test_eta_follows_the_rate_so_far():
    clock = FakeClock()
    p = PhaseProgress(clock)
    p.plan([("steps", 1)])
    assert p.update("steps", 0, 10).eta_sec is None
    clock.now = 2.0
    assert p.update("steps", 2, 10).eta_sec == pytest.approx(8.0)


def test_a_plan_needs_a_positive_weight():
    with pytest.raises(ValueError):
        PhaseProgress().plan([("a", 0)])


def simulate(phases_cost: list[tuple[str, int, float]], plan_weights: list[tuple[str, float]]) -> list[tuple[float, float]]:
    """A backend whose units cost known (fake) seconds; returns (true fraction, percent) per report."""
    clock = FakeClock()
    p = PhaseProgress(clock)
    p.plan(plan_weights)
    total = sum(units * cost for _name, units, cost in phases_cost)
    seen = []
    for name, units, cost in phases_cost:
        for i in range(units):
            clock.now += cost
            seen.append((clock.now / total, p.update(name, i + 1, units).percent))
    return seen


def test_percent_tracks_wall_time_when_weights_match_phase_costs():
    # text 0.5 s, 27 steps of 0.8 s, 4 decode windows of 2 s: weights are units x cost
    costs = [("text", 1, 0.5), ("steps", 27, 0.8), ("decode", 4, 2.0)]
    for true_fraction, percent in simulate(costs, [("text", 0.5), ("steps", 21.6), ("decode", 8.0)]):
        assert abs(percent - 100 * true_fraction) <= 10


def test_the_procedural_backend_reports_within_ten_points_of_wall_time():
    stamps: list[tuple[float, float]] = []

    class Recorder:
        inner = PhaseProgress()

        def plan(self, phases):  # the backend re-plans as it measures itself
            self.inner.plan(phases)

        def update(self, phase, current, total):
            stamps.append((time.perf_counter(), self.inner.update(phase, current, total).percent, phase, current))

    # A warm process, as in a daemon that has made a track: the first big numpy allocations
    # pay one-off page faults that a single run cannot price.
    render("warm up", 5.0, 1, Recorder(), CancelToken())

    def worst_error() -> tuple[float, str, int]:
        stamps.clear()
        Recorder.inner = PhaseProgress()
        start = time.perf_counter()
        render("lofi jazzy piano", 60.0, 3, Recorder(), CancelToken())
        wall = time.perf_counter() - start
        return max((abs(percent - 100 * (t - start) / wall), phase, step) for t, percent, phase, step in stamps)

    # Another process taking the CPU mid-run (a shared CI box) shifts wall time in a way no
    # estimate can see; the claim is about an undisturbed run, so one of two must hold.
    worst = min(worst_error(), worst_error())
    assert worst[0] <= 10, f"progress strayed {worst[0]:.1f} points from wall time at {worst[1]} {worst[2]}"
