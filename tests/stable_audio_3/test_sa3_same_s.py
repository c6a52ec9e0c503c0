"""SAME-S: our autoencoder against the official one, and decoding in windows."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lofi_daemon.backends.stable_audio_3.same_s import SameS, SameSConfig  # noqa: E402

from sa3_fixtures import checkpoint, golden  # noqa: E402

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def same_s():
    return checkpoint().build_same_s()


def test_encode_matches_the_official_autoencoder(same_s):
    with torch.no_grad():
        latents = same_s.encode(golden()["ae.audio"])
    assert latents.shape == golden()["ae.encoded"].shape
    assert (latents - golden()["ae.encoded"]).abs().max() <= TOLERANCE


def test_decode_matches_the_official_autoencoder(same_s):
    with torch.no_grad():
        audio = same_s.decode(golden()["ae.latents"])
    assert audio.shape == golden()["ae.decoded"].shape
    assert (audio - golden()["ae.decoded"]).abs().max() <= TOLERANCE


def test_an_odd_latent_count_decodes_like_the_official_padded_decode_cut_to_length(same_s):
    latents = golden()["ae.latents_odd"]
    with torch.no_grad():
        audio = same_s.decode(latents)
    assert audio.shape[-1] == latents.shape[-1] * same_s.samples_per_latent
    official = golden()["ae.decoded_odd"][..., : audio.shape[-1]]
    assert (audio - official).abs().max() <= TOLERANCE


def _random_same_s(width: int, seed: int = 0) -> SameS:
    torch.manual_seed(seed)
    model = SameS(SameSConfig(patch_size=4, width=width, latent_dim=16, depth=4, head_dim=8,
                              blocks_per_group=4)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05 if p.dim() > 1 else 0.3)
    return model


@pytest.mark.parametrize("length", [9, 38, 70])
@pytest.mark.parametrize("core,context", [(2, 2), (4, 2), (16, 4), (10, 2)])
def test_windows_with_two_latents_of_context_join_into_the_full_decode_bit_for_bit(length, core, context):
    model = _random_same_s(width=32)
    latents = torch.randn(1, 16, length, generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        full = model.decode(latents)
        pieces = list(model.decode_windows(latents, core=core, context=context))
    assert [start for start, _ in pieces] == [s * model.samples_per_latent for s in range(0, length, core)]
    assert torch.equal(torch.cat([audio for _, audio in pieces], dim=-1), full)


def test_without_context_the_window_edges_differ_so_the_context_is_needed():
    model = _random_same_s(width=32)
    latents = torch.randn(1, 16, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model.decode(latents)
        joined = torch.cat([a for _, a in model.decode_windows(latents, core=4, context=0)], dim=-1)
    assert (joined - full).abs().max() > 1e-3


def test_a_latent_reaches_only_two_latents_either_side():
    """Blockwise attention: changing one latent leaves audio three latents away untouched,
    which is why memory grows linearly with the track."""
    model = _random_same_s(width=32)
    latents = torch.randn(1, 16, 20, generator=torch.Generator().manual_seed(5))
    changed = latents.clone()
    changed[..., 10] += 1.0
    with torch.no_grad():
        a, b = model.decode(latents), model.decode(changed)
    per_latent = (a - b).abs().amax(dim=1)[0].view(20, -1).amax(dim=1)
    touched = (per_latent > 0).nonzero().flatten().tolist()
    assert 10 in touched and min(touched) >= 7 and max(touched) <= 13


def test_windows_refuse_sizes_that_break_the_block_alignment():
    model = _random_same_s(width=32)
    with pytest.raises(ValueError, match="multiples of 2"):
        list(model.decode_windows(torch.zeros(1, 16, 8), core=3, context=2))
