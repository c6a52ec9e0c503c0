"""Our tiled VAE decode: equal to the one-shot decode, with progress and cancel between tiles."""

from __future__ import annotations

import pytest
import torch
from tiny_acestep15 import ACOUSTIC_DIM, tiny_vae

from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.ace_step_15.decode import TARGET_PEAK, TilePlan, decode, normalize
from lofi_daemon.errors import JobCancelled

ONE_SHOT = TilePlan(untiled_up_to=10**9)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(3)
    return tiny_vae("real").eval()  # the real 48 kHz rate and hop: 1920 samples per latent


def _latents(n: int) -> torch.Tensor:
    return torch.randn(1, n, ACOUSTIC_DIM, generator=torch.Generator().manual_seed(n))


def test_tiled_decode_equals_the_one_shot_decode_within_1e_4(vae):
    latents = _latents(300)  # 12 s
    plan = TilePlan(core=64, overlap=16, untiled_up_to=0)
    assert plan.count(300) == 5
    whole = decode(vae, latents, ONE_SHOT)
    tiled = decode(vae, latents, plan)
    assert tiled.shape == whole.shape == (1, 2, 300 * 1920)
    assert (tiled - whole).abs().max().item() < 1e-4


def test_tiles_without_context_would_not_be_equal(vae):
    """The overlap is what makes tiling exact: without it the seams differ (so the test above can fail)."""
    latents = _latents(300)
    whole = decode(vae, latents, ONE_SHOT)
    seams = decode(vae, latents, TilePlan(core=64, overlap=0, untiled_up_to=0))
    assert (seams - whole).abs().max().item() > 1e-3


def test_the_default_plan_decodes_short_tracks_in_one_call_and_long_ones_in_tiles():
    plan = TilePlan()
    assert plan.tiles(250) == [(0, 250, 0, 250)]  # 10 s
    tiles = plan.tiles(15000)  # 600 s
    assert len(tiles) == plan.count(15000) == 40
    assert tiles[0][:2] == (0, 384) and tiles[-1][1] == 15000
    assert all(a[1] == b[0] for a, b in zip(tiles, tiles[1:]))  # cores cover the track once, in order


def test_each_tile_reports_and_a_cancel_stops_before_the_next_tile(vae):
    latents = _latents(200)
    plan = TilePlan(core=50, overlap=16, untiled_up_to=0)
    token = CancelToken()
    seen = []

    def on_tile(done, total):
        seen.append((done, total))
        if done == 2:
            token.cancel()

    with pytest.raises(JobCancelled) as err:
        decode(vae, latents, plan, on_tile=on_tile, cancel=token)
    assert seen == [(1, 4), (2, 4)]
    assert (err.value.facts.get("at_step"), err.value.facts.get("total_steps")) == (2, 4)


def test_loudness_is_the_pipelines_peak_at_minus_1_dbfs():
    loud = torch.tensor([[[0.1, -3.0], [2.0, 0.5]]])
    quiet = torch.tensor([[[0.001, -0.002], [0.0, 0.0005]]])
    for audio in (loud, quiet):
        assert normalize(audio).abs().max().item() == pytest.approx(TARGET_PEAK, rel=1e-6)
