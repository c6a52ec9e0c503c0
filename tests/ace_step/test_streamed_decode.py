"""Play while decoding: the decode hands out finished audio in time order, and that changes nothing.

The windowed decode runs each vocoder window (both channels) as soon as its mel and the
vocoder's context are final, so audio comes out while the rest is still being decoded. These
tests check the order, that the pieces join to exactly the result, that the result does not
depend on whether anyone listens, and that the vocoder context is really enough.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lofi_daemon.backends.ace_step.decode import AudioDecoder, WindowPlan, plan_windows
from lofi_daemon.backends.ace_step.resample import StreamResampler, output_length, resample_44k_to_48k
from lofi_daemon.backends.ace_step.vocoder import MusicVocoder, VocoderConfig
from lofi_daemon.cancel import CancelToken
from lofi_daemon.errors import JobCancelled

SMALL = WindowPlan(dcae_frames=32, vocoder_frames=256, attention_chunk_frames=24, auto_above_frames=64)


@pytest.fixture
def decoder(golden):
    return AudioDecoder.from_checkpoint(golden.checkpoint, plan=SMALL)


def _latents(frames: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 1.2 * torch.randn(1, 8, 16, frames, generator=generator)


class Listener:
    """Keeps every piece ``on_audio`` gets and how much decode work was done before it."""

    def __init__(self) -> None:
        self.pieces: list[torch.Tensor] = []
        self.units_before: list[int] = []
        self.units = 0
        self.total = 0

    def on_window(self, done: int, total: int) -> None:
        self.units, self.total = done, total

    def on_audio(self, wav: torch.Tensor) -> None:
        self.pieces.append(wav.clone())
        self.units_before.append(self.units)


def test_windowed_audio_comes_out_in_time_order_before_the_decode_ends_and_joins_to_the_result(decoder):
    listener = Listener()
    latents = _latents(160)  # 14.9 s: 5 vocoder windows of 256 mel frames
    out = decoder.decode(latents, windowed=True, on_window=listener.on_window, on_audio=listener.on_audio)
    windows = plan_windows(160 * 8, SMALL.vocoder_frames, 0, 0)
    assert len(listener.pieces) == len(windows)
    assert torch.equal(torch.cat(listener.pieces, dim=-1), out["wav_44k"][0])  # exactly, not nearly
    # The first piece came while most of the work was still to do, and each later one after more.
    assert listener.units_before[0] < listener.total / 2
    assert listener.units_before == sorted(listener.units_before) and listener.units_before[-1] == listener.total


def test_listening_does_not_change_a_bit_of_the_decode(decoder):
    latents = _latents(100, seed=2)
    alone = decoder.decode(latents, windowed=True)
    heard = decoder.decode(latents, windowed=True, on_audio=lambda wav: None)
    assert torch.equal(alone["wav_44k"], heard["wav_44k"]) and torch.equal(alone["mel"], heard["mel"])


def test_a_one_shot_decode_hands_out_the_whole_track_once_at_the_end(golden):
    decoder = AudioDecoder.from_checkpoint(golden.checkpoint)  # 53 frames: one shot
    listener = Listener()
    out = decoder.decode(_latents(53), on_window=listener.on_window, on_audio=listener.on_audio)
    assert len(listener.pieces) == 1 and listener.units_before == [listener.total]
    assert torch.equal(listener.pieces[0], out["wav_44k"][0])


def test_streaming_a_batch_is_refused(decoder):
    with pytest.raises(ValueError, match="batch size 1"):
        decoder.decode(torch.zeros(2, 8, 16, 10), on_audio=lambda wav: None)


def test_cancel_after_the_first_piece_stops_the_decode(decoder):
    cancel = CancelToken()
    pieces = []

    def on_audio(wav):
        pieces.append(wav)
        cancel.cancel()

    with pytest.raises(JobCancelled):
        decoder.decode(_latents(160), windowed=True, cancel=cancel, on_audio=on_audio)
    assert len(pieces) == 1


def test_the_vocoder_context_covers_how_far_one_mel_frame_reaches(golden):
    """Change one mel frame in the middle: no output sample farther than
    ``receptive_field_frames()`` frames away may move (else windows would not be exact)."""
    vocoder = MusicVocoder.from_pretrained(golden.checkpoint / "music_vocoder")
    hop, frames, middle = vocoder.hop_length, 160, 80
    mel = torch.randn(1, 128, frames, generator=torch.Generator().manual_seed(4)) * 2 - 5
    bumped = mel.clone()
    bumped[..., middle] += 3.0
    with torch.no_grad():
        moved = (vocoder(bumped) - vocoder(mel)).abs().reshape(-1) > 0
    moved_frames = torch.nonzero(moved).flatten() // hop
    reach = int((moved_frames - middle).abs().max())
    assert 0 < reach <= vocoder.receptive_field_frames()
    assert reach >= vocoder.receptive_field_frames() // 2  # the bound is not absurdly loose either


def test_the_released_vocoders_context_is_93_mel_frames():
    # Backbone: stem k=7 (3) + 18 ConvNeXt depthwise convs k=7 (3 each) = 57 frames; head:
    # conv_pre k=13 (6); per upsampling stage the transposed conv (ceil(k/u) = 2 input steps)
    # and the widest resblock (k=13, dilations 1,3,5: 12+24+36 = 72 samples at that stage's
    # rate 4, 16, 32, ..., 512), conv_post k=13 (6 samples): 57 + 6 + 2.74 + 26.86 + 0.01 = 92.6.
    assert MusicVocoder(VocoderConfig()).receptive_field_frames() == 93


@pytest.mark.parametrize("method", ["soxr", "sinc_hann"])
def test_the_stream_resampler_joins_to_the_one_shot_result(method):
    rng = np.random.default_rng(5)
    wav = (0.2 * rng.standard_normal((2, 4096 * 40))).astype(np.float32)
    stream = StreamResampler(2, method)
    cuts = [0, 1, 4096 * 3 + 17, 4096 * 11, 4096 * 30 + 5, wav.shape[-1]]
    pieces = [stream.feed(wav[:, a:b]) for a, b in zip(cuts, cuts[1:])] + [stream.finish()]
    joined = np.concatenate(pieces, axis=-1)
    assert joined.shape == (2, output_length(wav.shape[-1]))
    np.testing.assert_array_equal(joined, resample_44k_to_48k(wav, method=method))
    if method == "soxr":
        assert sum(p.shape[-1] for p in pieces[:-1]) > joined.shape[-1] // 2  # most came before the end
