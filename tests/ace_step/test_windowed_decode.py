"""Windowed (bounded-memory) decode: same audio as the one-shot decode, no audible seams.

Small windows (a few seconds) make short test tracks cross many window boundaries; the
real defaults only differ in size (WindowPlan()).
"""

from __future__ import annotations

import pytest
import torch

from lofi_daemon.backends.ace_step.decode import AudioDecoder, WindowPlan, plan_windows
from lofi_daemon.cancel import CancelToken
from lofi_daemon.errors import JobCancelled

SMALL = WindowPlan(dcae_frames=32, vocoder_frames=256, attention_chunk_frames=24, auto_above_frames=64)
SAMPLES_PER_FRAME = 4096  # 44.1 kHz samples per latent frame


@pytest.fixture
def decoder(golden):
    return AudioDecoder.from_checkpoint(golden.checkpoint, plan=SMALL)


def _latents(frames: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 1.2 * torch.randn(1, 8, 16, frames, generator=generator)  # final latents have std ~1.2


def test_window_plan_covers_the_track_with_matching_crossfades():
    for total, core, context, overlap in [(100, 32, 4, 2), (257, 256, 8, 1), (10, 32, 3, 1), (2583, 256, 8, 1)]:
        windows = plan_windows(total, core, context, overlap)
        assert windows[0].start == 0 and windows[-1].stop == total
        assert windows[0].fade_in == 0 and windows[-1].fade_out == 0
        for a, b in zip(windows, windows[1:]):
            assert a.stop - b.start == a.fade_out == b.fade_in  # the shared stretch is the crossfade
        for w in windows:
            assert w.stop - w.start <= core + overlap
            assert w.lo == max(0, w.start - context) and w.hi == min(total, w.stop + context)


@pytest.mark.parametrize("case", ["euler_apg", "pingpong_cfg", "euler_apg_instrumental_tag"])
def test_windowed_decode_of_a_case_still_matches_the_official_references(golden, decoder, case):
    key = f"e2e_{case}"
    ref = golden.tensors(key)
    windowed = decoder.decode(ref["final_latents"], windowed=True)  # 53 frames: 2 DCAE, 2 vocoder windows
    golden.check(key, "mel", windowed["mel"][0], ref["mel"])
    golden.check(key, "wav_44k", windowed["wav_44k"][0], ref["wav_44k"])


def test_long_track_windowed_equals_one_shot_to_float_rounding(decoder):
    latents = _latents(160)  # 14.9 s, 5 DCAE windows and 5 vocoder windows per channel
    one_shot = decoder.decode(latents, windowed=False)
    windowed = decoder.decode(latents, windowed=True)
    assert (windowed["mel"] - one_shot["mel"]).abs().max() < 1e-4  # mel spans about [-11, 3]
    assert (windowed["wav_44k"] - one_shot["wav_44k"]).abs().max() < 5e-6


def _seam_profile(wav: torch.Tensor, reference: torch.Tensor, frame: int = 256):
    """Per short frame: |level difference| in dB and log-spectral distance to ``reference``."""

    def frames(x):
        return x[..., : x.shape[-1] // frame * frame].unflatten(-1, (-1, frame))

    level = lambda x: 20 * torch.log10(frames(x).std(-1) + 1e-9)  # noqa: E731
    level_step = (level(wav) - level(reference)).abs().amax(0)
    window = torch.hann_window(frame, dtype=torch.float64)
    spec = lambda x: torch.log10(  # noqa: E731
        torch.stft(x.double(), frame, frame, window=window, center=False, return_complex=True).abs() + 1e-9
    )
    spectral = (20 * (spec(wav) - spec(reference))).pow(2).mean(1).sqrt().amax(0)
    return level_step, spectral


def _seam_frames(frames_total: int, window_frames: int, frame: int = 256) -> torch.Tensor:
    mask = torch.zeros(frames_total, dtype=torch.bool)
    for seam in range(window_frames, 10**9, window_frames):
        index = seam * SAMPLES_PER_FRAME // frame
        if index >= frames_total:
            break
        mask[max(0, index - 2) : index + 2] = True
    return mask


def test_no_step_in_level_or_spectrum_at_window_seams(decoder):
    latents = _latents(160, seed=1)
    one_shot = decoder.decode(latents, windowed=False)["wav_44k"][0]
    windowed = decoder.decode(latents, windowed=True)["wav_44k"][0]
    level, spectral = _seam_profile(windowed, one_shot)
    # DCAE window seams fall every 32 latent frames, vocoder seams every 256 mel = 32 latent frames
    seams = _seam_frames(level.shape[0], SMALL.dcae_frames)
    assert seams.any() and (~seams).any()
    # At the seams the windowed track is as close to the one-shot track as anywhere else, and
    # that closeness is far below audibility (0.1 dB level, 0.1 dB spectral distance).
    assert level[seams].max() < 1e-3 and spectral[seams].max() < 1e-3
    assert level[seams].max() <= 10 * level[~seams].max() + 1e-6


def test_seam_check_catches_windows_decoded_without_context(decoder):
    """Negative control: cutting the latents into independent windows is audible at the cuts."""
    latents = _latents(160, seed=1)
    one_shot = decoder.decode(latents, windowed=False)["wav_44k"][0]
    naive = torch.cat(
        [decoder.decode(latents[..., s : s + 32], windowed=False)["wav_44k"][0] for s in range(0, 160, 32)], dim=-1
    )
    level, spectral = _seam_profile(naive, one_shot)
    seams = _seam_frames(level.shape[0], 32)
    assert level[seams].max() > 0.5 or spectral[seams].max() > 1.0


def _largest_activation(decoder: AudioDecoder, latents: torch.Tensor, windowed: bool) -> int:
    """Largest tensor any DCAE or vocoder submodule produced during the decode (elements)."""
    largest = 0

    def hook(_module, _inputs, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel())

    modules = [m for m in decoder.modules() if m is not decoder and m is not decoder.dcae and m is not decoder.vocoder]
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        decoder.decode(latents, windowed=windowed)
    finally:
        for h in handles:
            h.remove()
    return largest


def test_windowed_activations_do_not_grow_with_track_length(decoder):
    short, long = _latents(96), _latents(192)
    assert _largest_activation(decoder, long, windowed=True) == _largest_activation(decoder, short, windowed=True)
    one_shot_short = _largest_activation(decoder, short, windowed=False)
    assert _largest_activation(decoder, long, windowed=False) >= 1.9 * one_shot_short


def test_progress_reports_every_window_in_order(decoder):
    calls = []
    decoder.decode(_latents(100), windowed=True, on_window=lambda done, total: calls.append((done, total)))
    total = calls[0][1]
    assert [done for done, _ in calls] == list(range(1, total + 1))
    assert all(t == total for _, t in calls)
    # 4 DCAE windows + 2 channels x 4 vocoder windows, plus the attention stage's layers
    assert total == decoder.dcae.global_layers() + 4 + 2 * 4


def test_cancel_stops_the_decode_between_windows(decoder):
    cancel = CancelToken()
    seen = []

    def on_window(done, total):
        seen.append(done)
        if done == 5:
            cancel.cancel()

    with pytest.raises(JobCancelled):
        decoder.decode(_latents(100), windowed=True, on_window=on_window, cancel=cancel)
    assert seen[-1] == 5  # nothing ran after the window in which cancel arrived


def test_automatic_mode_windows_only_long_tracks(golden):
    default = AudioDecoder.from_checkpoint(golden.checkpoint)
    assert not default.will_window(53) and not default.will_window(512)  # up to 47.6 s: one shot
    assert default.will_window(513) and default.will_window(2583)  # 240 s: windowed
    assert default.will_window(53, windowed=True) and not default.will_window(2583, windowed=False)


def test_working_memory_estimate_stays_flat_when_windowed_and_grows_when_not(golden):
    decoder = AudioDecoder.from_checkpoint(golden.checkpoint)
    four_min, two_min = decoder.working_bytes(2583), decoder.working_bytes(1291)  # automatic: windowed
    # only the kept outputs and the latent-resolution state grow with the track
    attention_width = decoder.dcae.config["decoder_block_out_channels"][-1]
    outputs_growth = (2583 - 1291) * 4 * (2 * 128 * 8 + 2 * 4096 + attention_width * 16)
    assert four_min - two_min <= outputs_growth
    one_shot = decoder.working_bytes(2583, windowed=False)
    assert one_shot > 3 * four_min
    assert decoder.working_bytes(53) == decoder.working_bytes(53, windowed=False)  # 5 s: one shot
