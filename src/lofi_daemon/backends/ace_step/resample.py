"""44.1 kHz (the vocoder's rate) -> 48 kHz (what lofi tracks are written at).

Two methods, both returning ``ceil(n * 48000 / 44100)`` samples:

* ``"soxr"`` (default): libsoxr's very-high-quality resampler — the quality bar the rest of
  the daemon uses for 48 kHz output.
* ``"sinc_hann"``: our port of the official pipeline's resampler, torchaudio's
  ``Resample(44100, 48000)`` with its defaults (windowed-sinc interpolation, Hann window,
  ``lowpass_filter_width`` 6, ``rolloff`` 0.99). Use it where output must match the
  official code (parity tests, ``wav_48k`` in the fixtures).

How the sinc method works: with the rates reduced by their gcd (300) to 147 -> 160, output
sample ``j`` of every block of 160 is a dot product of a fixed 161-tap filter (phase
``j/160``) with the input around position ``147*block``. So the 160 filters form one
conv1d kernel ``[160, 1, 161]`` applied with stride 147, and the 160 output channels are
interleaved back into time. The filter is ``sinc(pi*b*t) * cos(pi*t/(2w))^2 * b`` with
``b = 0.99*min(rates)/orig`` the cutoff as a fraction of the input rate and ``t`` clamped to
``±w`` zero crossings.

Accepts a torch tensor or a numpy array of shape ``[..., samples]`` and returns the same
kind; the result is float32.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ...errors import InvalidParams

if TYPE_CHECKING:
    import torch

SOURCE_RATE = 44100
TARGET_RATE = 48000
METHODS = ("soxr", "sinc_hann")


def resample_44k_to_48k(wav: Any, method: str = "soxr") -> Any:
    """Resample ``wav`` (``[..., samples]`` at 44.1 kHz) to 48 kHz with ``method``."""
    return resample(wav, SOURCE_RATE, TARGET_RATE, method=method)


def resample(wav: Any, orig_rate: int, new_rate: int, *, method: str = "soxr") -> Any:
    if method not in METHODS:
        raise InvalidParams(
            f"unknown resampling method {method!r}", hint=f"Use one of {list(METHODS)}.", field="method"
        )
    if orig_rate <= 0 or new_rate <= 0:
        raise InvalidParams(f"sample rates must be positive, got {orig_rate} -> {new_rate}", field="rate")
    if method == "soxr":
        return _resample_soxr(wav, orig_rate, new_rate)
    import numpy as np
    import torch

    if isinstance(wav, np.ndarray):
        return resample_sinc_hann(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), orig_rate, new_rate).numpy()
    return resample_sinc_hann(wav, orig_rate, new_rate)


def output_length(samples: int, orig_rate: int = SOURCE_RATE, new_rate: int = TARGET_RATE) -> int:
    """``ceil(samples * new / orig)`` with exact integer arithmetic."""
    g = math.gcd(orig_rate, new_rate)
    up, down = new_rate // g, orig_rate // g
    return -(-samples * up // down)


def sinc_hann_kernel(
    orig_rate: int = SOURCE_RATE,
    new_rate: int = TARGET_RATE,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    device: "str | torch.device" = "cpu",
) -> tuple["torch.Tensor", int]:
    """The ``[new', 1, 2*width + orig']`` float32 filter bank and the padding ``width``.

    Same float steps as torchaudio (positions in float64 except the output phase ``j/new'``,
    which torchaudio divides in the default float32 dtype before mixing it in), so the
    taps agree to the last bit or two.
    """
    import torch

    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    if lowpass_filter_width <= 0:
        raise InvalidParams("lowpass_filter_width must be positive", field="lowpass_filter_width")
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates
    width = math.ceil(lowpass_filter_width * orig / cutoff)

    taps = torch.arange(-width, width + orig, dtype=torch.float64, device=device)[None, None] / orig
    phase = torch.arange(0, -new, -1, device=device)[:, None, None] / new  # float32, like torchaudio
    t = (phase + taps) * cutoff
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones((), dtype=t.dtype, device=device), t.sin() / t)
    kernel = sinc * (window * (cutoff / orig))
    return kernel.to(torch.float32), width


def resample_sinc_hann(wav: "torch.Tensor", orig_rate: int = SOURCE_RATE, new_rate: int = TARGET_RATE) -> "torch.Tensor":
    """torchaudio's default ``Resample`` (sinc_interp_hann, width 6, rolloff 0.99), in float32."""
    import torch
    import torch.nn.functional as F

    if orig_rate == new_rate:
        return wav.to(torch.float32)
    g = math.gcd(orig_rate, new_rate)
    orig = orig_rate // g
    # Built in float64 on the CPU (MPS has no float64), used in float32 wherever the audio is.
    kernel, width = sinc_hann_kernel(orig_rate, new_rate)
    kernel = kernel.to(wav.device)
    shape = wav.shape
    flat = wav.to(torch.float32).reshape(-1, shape[-1])
    padded = F.pad(flat, (width, width + orig))
    out = F.conv1d(padded[:, None], kernel, stride=orig)  # [n, new', blocks]
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    out = out[..., : output_length(shape[-1], orig_rate, new_rate)]
    return out.reshape(*shape[:-1], out.shape[-1])


def _resample_soxr(wav: Any, orig_rate: int, new_rate: int) -> Any:
    import numpy as np

    from ...audio import resample  # the project's one soxr call

    is_numpy = isinstance(wav, np.ndarray)
    if is_numpy:
        array = np.asarray(wav, dtype=np.float32)
    else:
        array = wav.detach().to("cpu").float().numpy()
    shape = array.shape
    out = resample(array.reshape(-1, shape[-1]), orig_rate, new_rate)  # [channels, samples]
    # soxr rounds the length; pad/trim to ceil() so both methods agree on the track length.
    target = output_length(shape[-1], orig_rate, new_rate)
    if out.shape[-1] < target:
        out = np.pad(out, ((0, 0), (0, target - out.shape[-1])))
    out = np.ascontiguousarray(out[:, :target].reshape(*shape[:-1], target), dtype=np.float32)
    if is_numpy:
        return out
    import torch

    return torch.from_numpy(out).to(wav.device)


class StreamResampler:
    """44.1 -> 48 kHz for audio that arrives in time-ordered pieces ``[channels, n]`` (float32).

    ``feed(piece)`` returns the 48 kHz samples that are final so far; ``finish()`` returns the
    rest, padded or trimmed so the whole is ``output_length(total input)`` long, as
    ``resample_44k_to_48k`` makes it. With ``"soxr"`` the pieces joined are the one-shot soxr
    result (libsoxr's stream state does not depend on how the input is cut; tested).
    ``"sinc_hann"`` (the parity method, never streamed by the daemon) keeps the input and
    resamples it in ``finish``.
    """

    def __init__(self, channels: int, method: str = "soxr") -> None:
        if method not in METHODS:
            raise InvalidParams(
                f"unknown resampling method {method!r}", hint=f"Use one of {list(METHODS)}.", field="method"
            )
        self.method = method
        self.channels = channels
        self._stream: Any = None
        self._kept: list[Any] = []  # sinc_hann: the whole input, until finish
        self._in = 0
        self._out = 0

    def feed(self, piece: Any) -> Any:
        import numpy as np

        array = np.ascontiguousarray(np.asarray(piece, dtype=np.float32).reshape(self.channels, -1))
        self._in += array.shape[-1]
        if self.method == "sinc_hann":
            self._kept.append(array)
            return np.zeros((self.channels, 0), dtype=np.float32)
        if self._stream is None:
            from ...audio import stream_resampler  # the project's one soxr seam

            self._stream = stream_resampler(SOURCE_RATE, TARGET_RATE, self.channels)
        out = self._stream.resample_chunk(np.ascontiguousarray(array.T), last=False).T
        return self._limit(out)

    def finish(self) -> Any:
        import numpy as np

        target = output_length(self._in)
        if self.method == "sinc_hann":
            whole = np.concatenate(self._kept, axis=-1) if self._kept else np.zeros((self.channels, 0), np.float32)
            self._kept = []
            out = resample_44k_to_48k(whole, method="sinc_hann")
        elif self._stream is not None:
            out = self._stream.resample_chunk(np.zeros((0, self.channels), dtype=np.float32), last=True).T
        else:
            out = np.zeros((self.channels, 0), dtype=np.float32)
        out = self._limit(out)
        if self._out < target:  # soxr rounds the length; ceil() like the one-shot methods
            out = np.concatenate([out, np.zeros((self.channels, target - self._out), np.float32)], axis=-1)
            self._out = target
        return out

    def _limit(self, out: Any) -> Any:
        """Never more than the one-shot length in all (soxr may round up at the end)."""
        import numpy as np

        room = max(0, output_length(self._in) - self._out) if self.method == "soxr" else out.shape[-1]
        out = np.ascontiguousarray(out[:, :room], dtype=np.float32)
        self._out += out.shape[-1]
        return out
