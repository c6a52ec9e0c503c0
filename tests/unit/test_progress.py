"""Progress percent: weighted by phase cost, monotone, close to the true share of wall time."""

from __future__ import annotations

import pytest

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
