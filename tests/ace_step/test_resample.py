"""44.1 -> 48 kHz: the port of the official sinc-Hann resampler, and soxr (our default)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lofi_daemon.backends.ace_step.resample import output_length, resample_44k_to_48k, sinc_hann_kernel
from lofi_daemon.errors import InvalidParams


def test_sinc_hann_port_matches_torchaudio_resample(golden):
    ref = golden.tensors("unit_resample_44k_to_48k")
    out = resample_44k_to_48k(ref["in_wav_44k"], method="sinc_hann")
    golden.check("unit_resample_44k_to_48k", "out_wav_48k", out, ref["out_wav_48k"])


def test_sinc_hann_kernel_has_the_documented_shape():
    kernel, width = sinc_hann_kernel(44100, 48000)
    assert tuple(kernel.shape) == (160, 1, 161) and width == 7
    # Each phase is a low-pass filter with unity gain at DC (up to the 0.99 rolloff's truncation).
    assert torch.allclose(kernel.sum(dim=-1), torch.ones(160, 1), atol=2e-3)


def test_numpy_in_numpy_out_and_batch_shapes_are_kept():
    wav = np.random.default_rng(0).standard_normal((3, 2, 1000)).astype(np.float32)
    for method in ("sinc_hann", "soxr"):
        out = resample_44k_to_48k(wav, method=method)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        assert out.shape == (3, 2, output_length(1000))
    assert output_length(217088) == math.ceil(217088 * 48000 / 44100) == 236287


@pytest.mark.parametrize("method", ["soxr", "sinc_hann"])
def test_a_tone_comes_out_as_the_same_tone_at_48k(method):
    freq, seconds = 997.0, 0.5
    t44 = torch.arange(int(44100 * seconds), dtype=torch.float64) / 44100
    tone = (0.5 * torch.sin(2 * math.pi * freq * t44)).float()[None]
    out = resample_44k_to_48k(tone, method=method)
    assert isinstance(out, torch.Tensor) and out.shape == (1, output_length(tone.shape[-1]))
    t48 = torch.arange(out.shape[-1], dtype=torch.float64) / 48000
    expected = 0.5 * torch.sin(2 * math.pi * freq * t48)
    middle = slice(2000, out.shape[-1] - 2000)  # away from the zero-padded edges
    assert (out[0, middle].double() - expected[middle]).abs().max() < 2e-3


def test_soxr_and_the_official_resampler_agree_on_band_limited_audio():
    rng = torch.Generator().manual_seed(3)
    t = torch.arange(22050, dtype=torch.float64) / 44100
    freqs = torch.rand(12, generator=rng, dtype=torch.float64) * 15000 + 40
    audio = sum(0.05 * torch.sin(2 * math.pi * f * t + p) for f, p in zip(freqs, torch.rand(12, generator=rng) * 6))
    audio = audio.float()[None]
    a = resample_44k_to_48k(audio, method="soxr")
    b = resample_44k_to_48k(audio, method="sinc_hann")
    middle = slice(2000, -2000)
    assert (a[:, middle] - b[:, middle]).abs().max() < 5e-3


def test_unknown_method_is_rejected_with_the_choices():
    with pytest.raises(InvalidParams) as err:
        resample_44k_to_48k(torch.zeros(1, 10), method="linear")
    assert "soxr" in err.value.hint
