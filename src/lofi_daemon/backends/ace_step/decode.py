"""Latents -> log-mel -> 44.1 kHz stereo waveform, one-shot or in bounded-memory windows.

For the pipeline (stable names):

    decoder = AudioDecoder.from_checkpoint(checkpoint_dir, device, dtype)   # music_dcae_f8c8/ + music_vocoder/
    out = decoder.decode(latents, windowed=None, on_window=None, cancel=None)
    out["mel"]      # [B, 2, 128, 8F] float32, the vocoder input (log-mel, about [-11, 3])
    out["wav_44k"]  # [B, 2, 4096F] float32 at 44.1 kHz; resample.resample_44k_to_48k() makes 48 kHz

``windowed=None`` picks for you: one-shot (exactly the official ``MusicDCAE.decode``) up to
``WindowPlan.auto_above_frames`` latent frames (47.6 s by default), windowed above.
``on_window(done, total)`` is called after each unit of decode work (global DCAE layers,
then DCAE windows interleaved with vocoder windows per channel; one-shot: DCAE, then each
channel);
``cancel`` (a lofi ``CancelToken``) is checked before each unit.
``on_audio(wav)`` (batch 1 only) gets the 44.1 kHz stereo audio ``[2, n]`` in time order as
it is finished: windowed, after each vocoder window (both channels); one-shot, once at the
end. The pieces joined are exactly ``out["wav_44k"][0]``; with or without ``on_audio`` the
same computation runs.

How the windowed decode stays equal to the one-shot one (see ``dcae.py``): the DCAE's only
global operation, its linear attention at latent resolution, runs over the whole track in
two chunked passes; everything after it, and the whole vocoder, is local convolution, so
each window is computed with enough real context on both sides (the networks' receptive
fields, computed from their configs) that its kept middle is the one-shot value. Windows
overlap by a short stretch and are crossfaded with complementary raised-cosine ramps: on
exact windows this changes nothing measurable, and it keeps seams smooth where windows are
not bit-identical (bf16 kernels picking different algorithms per size). Peak memory then
depends on the window sizes, not on the track length (plus the small latent-resolution
state and the output itself). Measured differences and timings: docs/benchmarks.md (ACE-Step section).

The windowed decode runs in time order so a track can play while it decodes: after each DCAE
window the mel is final up to where the next window's crossfade begins, and every vocoder
window whose input (core plus ``receptive_field_frames()`` of context, 93 mel frames for the
released vocoder) lies inside that final mel runs at once, for both channels; the audio up to
the next vocoder crossfade is then final and goes to ``on_audio``. The windows, their context
and their crossfades are the same as when everything was computed stage by stage, so the
numbers are too (only the order of the work changed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from ...errors import ModelLoadFailed
from .dcae import MEL_FRAMES_PER_LATENT, DcaeDecoder
from .vocoder import MusicVocoder

if TYPE_CHECKING:
    from ...cancel import CancelToken

DCAE_FOLDER = "music_dcae_f8c8"
VOCODER_FOLDER = "music_vocoder"


@dataclass(frozen=True)
class WindowPlan:
    """Window sizes of the bounded-memory decode (cores; context is added on both sides)."""

    dcae_frames: int = 256  # latent frames per DCAE window (23.8 s of audio)
    vocoder_frames: int = 2048  # mel frames per vocoder window (23.8 s)
    attention_chunk_frames: int = 256  # latent frames per chunk of the attention stage
    dcae_overlap: int = 1  # latent frames crossfaded between DCAE windows (8 mel frames)
    vocoder_overlap: int = 1  # mel frames crossfaded between vocoder windows (512 samples)
    auto_above_frames: int = 512  # windowed=None windows tracks longer than this (47.6 s)

    def __post_init__(self) -> None:
        for name in ("dcae_frames", "vocoder_frames", "attention_chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"WindowPlan.{name} must be >= 1")
        if not 0 <= self.dcae_overlap < self.dcae_frames or not 0 <= self.vocoder_overlap < self.vocoder_frames:
            raise ValueError("WindowPlan overlaps must be >= 0 and smaller than their windows")


@dataclass(frozen=True)
class Window:
    """One window over ``total`` input columns.

    ``start:stop`` is what it contributes (including the crossfade stretches shared with its
    neighbours: ``fade_in`` columns at the start, ``fade_out`` at the end); ``lo:hi`` is the
    input it is computed from (``start:stop`` plus context, clipped to the track).
    """

    start: int
    stop: int
    lo: int
    hi: int
    fade_in: int
    fade_out: int


def plan_windows(total: int, core: int, context: int, overlap: int) -> list[Window]:
    """Split ``total`` columns into near-equal windows of at most ``core`` (+ ``overlap``)."""
    count = max(1, math.ceil(total / core))
    step = math.ceil(total / count)
    windows: list[Window] = []
    shared = 0  # crossfade columns shared with the previous window
    for k in range(count):
        start = k * step
        stop = total if k == count - 1 else min(total, (k + 1) * step + overlap)
        fade_out = max(0, stop - (k + 1) * step) if k < count - 1 else 0
        windows.append(
            Window(start, stop, lo=max(0, start - context), hi=min(total, stop + context), fade_in=shared, fade_out=fade_out)
        )
        shared = fade_out
    return windows


def _ramp(length: int, *, rising: bool, device, dtype) -> torch.Tensor:
    """Raised-cosine fade; a rising and a falling ramp of the same length sum to 1."""
    t = (torch.arange(length, device=device, dtype=torch.float64) + 0.5) / length
    up = 0.5 - 0.5 * torch.cos(math.pi * t)
    return (up if rising else 1 - up).to(dtype)


def _blend_into(out: torch.Tensor, piece: torch.Tensor, window: Window, scale: int) -> None:
    """Add ``piece`` (the window's ``start:stop`` span, ``scale`` outputs per column) into ``out``."""
    piece = piece.to(out.dtype)
    if window.fade_in:
        n = window.fade_in * scale
        piece[..., :n] *= _ramp(n, rising=True, device=piece.device, dtype=piece.dtype)
    if window.fade_out:
        n = window.fade_out * scale
        piece[..., piece.shape[-1] - n :] *= _ramp(n, rising=False, device=piece.device, dtype=piece.dtype)
    out[..., window.start * scale : window.stop * scale] += piece


class AudioDecoder(nn.Module):
    """DCAE decoder + vocoder, with the official one-shot decode and our windowed one."""

    def __init__(self, dcae: DcaeDecoder, vocoder: MusicVocoder, plan: WindowPlan | None = None) -> None:
        super().__init__()
        self.dcae = dcae
        self.vocoder = vocoder
        self.plan = plan or WindowPlan()

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint_dir: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        plan: WindowPlan | None = None,
    ) -> "AudioDecoder":
        """Load ``music_dcae_f8c8/`` (decoder half only) and ``music_vocoder/`` from an official checkpoint folder."""
        root = Path(checkpoint_dir)
        for folder in (DCAE_FOLDER, VOCODER_FOLDER):
            if not (root / folder).is_dir():
                raise ModelLoadFailed(
                    f"ACE-Step checkpoint has no {folder}/ folder ({root})",
                    hint="Run :LofiSetup ace-step again.",
                    path=str(root / folder),
                )
        dcae = DcaeDecoder.from_pretrained(root / DCAE_FOLDER, device=device, dtype=dtype)
        vocoder = MusicVocoder.from_pretrained(root / VOCODER_FOLDER, device=device, dtype=dtype)
        return cls(dcae, vocoder, plan)

    @property
    def device(self) -> torch.device:
        return self.dcae.decoder.conv_in.weight.device

    @property
    def sample_rate(self) -> int:
        return self.vocoder.sample_rate

    def will_window(self, frames: int, windowed: bool | None = None) -> bool:
        return frames > self.plan.auto_above_frames if windowed is None else bool(windowed)

    def working_bytes(self, frames: int, windowed: bool | None = None) -> int:
        """Rough peak memory ``decode`` needs on top of the weights, for a memory check.

        About 10 live tensors of the widest activation per latent frame (the DCAE's
        full-resolution stage or its attention stage's feed-forward, or the vocoder's widest
        stage) over the frames decoded at once, plus the outputs. Checked against the
        sampled RSS of bench/bench_ace_step.py (docs/benchmarks.md (ACE-Step section)): full size, 5 s,
        float32: 0.26 GB estimated vs 0.27-0.30 GB measured; tiny checkpoint, 240 s:
        1.7 GB vs 1.6 GB one-shot, 0.26 GB vs 0.20 GB windowed.
        """
        item = self.dcae.dtype.itemsize
        cfg = self.dcae.config
        widths = cfg.get("decoder_block_out_channels", (128, 256, 512, 1024))
        types = cfg.get("decoder_block_types", "ResBlock")
        types = [types] * len(widths) if isinstance(types, str) else list(types)
        latent_height = 16
        dcae_per_frame = 0
        for i, (channels, kind) in enumerate(zip(widths, types)):
            up = 2 ** (len(widths) - 1 - i)  # this stage's resolution, relative to the latents
            expand = 8 if kind == "EfficientViTBlock" else 1  # GLUMBConv: 4x hidden, doubled for its gate
            dcae_per_frame = max(dcae_per_frame, channels * expand * latent_height * up * up)
        voc = self.vocoder.config
        rate, vocoder_per_mel = 1, 0
        for i, u in enumerate(voc.upsample_rates):
            rate *= u
            vocoder_per_mel = max(vocoder_per_mel, voc.upsample_initial_channel // 2 ** (i + 1) * rate)
        vocoder_per_frame = vocoder_per_mel * MEL_FRAMES_PER_LATENT
        if self.will_window(frames, windowed):
            dcae_frames = min(frames, self.plan.dcae_frames + 2 * self.dcae.tail_context_frames() + 2)
            vocoder_frames = min(
                frames, -(-(self.plan.vocoder_frames + 2 * self.vocoder.receptive_field_frames()) // MEL_FRAMES_PER_LATENT) + 1
            )
            kept = widths[-1] * latent_height * frames * item  # the attention stage's output, kept whole
        else:
            dcae_frames = vocoder_frames = frames
            kept = 0
        live = 10 * item * max(dcae_per_frame * dcae_frames, vocoder_per_frame * vocoder_frames)
        outputs = 4 * frames * (2 * 128 * MEL_FRAMES_PER_LATENT + 2 * self.vocoder.hop_length * MEL_FRAMES_PER_LATENT)
        return int(live + kept + outputs)

    @torch.no_grad()
    def decode(
        self,
        latents: torch.Tensor,
        *,
        windowed: bool | None = None,
        on_window: Callable[[int, int], None] | None = None,
        cancel: "CancelToken | None" = None,
        on_audio: Callable[[torch.Tensor], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """latents ``[B, 8, 16, F]`` -> ``{"mel": [B, 2, 128, 8F], "wav_44k": [B, 2, 4096F]}`` (float32)."""
        if latents.dim() != 4:
            raise ValueError(f"latents must be [batch, 8, 16, frames], got shape {list(latents.shape)}")
        if on_audio is not None and latents.shape[0] != 1:
            raise ValueError("on_audio streams one track: latents must have batch size 1")
        latents = latents.to(self.device)
        frames = latents.shape[-1]
        use_windows = self.will_window(frames, windowed)
        channels = self.dcae.config.get("in_channels", 2)
        progress = _Progress(on_window, cancel, total=latents.shape[0] * self._units(frames, channels, use_windows))
        progress.check()
        mels, wavs = [], []
        for item in latents.split(1):
            if use_windows:
                mel, wav = self._decode_windowed(item, progress, on_audio)
            else:
                mel, wav = self._decode_one_shot(item, progress)
                if on_audio is not None:
                    on_audio(wav[0])
            mels.append(mel)
            wavs.append(wav)
        return {"mel": torch.cat(mels), "wav_44k": torch.cat(wavs)}

    def _units(self, frames: int, channels: int, windowed: bool) -> int:
        if not windowed:
            return 1 + channels
        dcae_windows = plan_windows(frames // self.dcae.global_downscale(), self.plan.dcae_frames, 0, 0)
        voc_windows = plan_windows(frames * MEL_FRAMES_PER_LATENT, self.plan.vocoder_frames, 0, 0)
        return self.dcae.global_layers() + len(dcae_windows) + channels * len(voc_windows)

    def _decode_one_shot(self, latents: torch.Tensor, progress: "_Progress") -> tuple[torch.Tensor, torch.Tensor]:
        """As the official ``MusicDCAE.decode``: whole decoder, then the vocoder per channel."""
        mel = self.dcae(latents)
        progress.tick()
        channels = []
        for c in range(mel.shape[1]):
            channels.append(self.vocoder(mel[:, c]).squeeze(1).float())
            progress.tick()
        return mel.float(), torch.cat(channels).unsqueeze(0)

    def _decode_windowed(
        self, latents: torch.Tensor, progress: "_Progress", on_audio: Callable[[torch.Tensor], None] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        plan = self.plan
        hidden = self.dcae.global_stage(latents, chunk_frames=plan.attention_chunk_frames, on_layer=progress.tick)
        scale = self.dcae.tail_upscale()
        hop = self.vocoder.hop_length
        mel_frames = hidden.shape[-1] * scale
        dcae_windows = plan_windows(hidden.shape[-1], plan.dcae_frames, self.dcae.tail_context_frames(), plan.dcae_overlap)
        vocoder_windows = plan_windows(mel_frames, plan.vocoder_frames, self.vocoder.receptive_field_frames(),
                                       plan.vocoder_overlap)
        vocoder_dtype = self.vocoder.head.conv_pre.weight.dtype
        mel: torch.Tensor | None = None
        wav: torch.Tensor | None = None
        next_vocoder = 0  # the first vocoder window not yet run
        handed_out = 0  # samples already given to on_audio
        for window in dcae_windows:
            progress.check()
            piece = self.dcae.local_tail(hidden[..., window.lo : window.hi])
            if window is dcae_windows[-1]:
                del hidden  # not needed by the vocoder windows still to run
            piece = piece[..., (window.start - window.lo) * scale : (window.stop - window.lo) * scale]
            if mel is None:
                mel = torch.zeros(*piece.shape[:-1], mel_frames, device=piece.device, dtype=torch.float32)
                wav = torch.zeros(mel.shape[1], mel_frames * hop, device=mel.device, dtype=torch.float32)
            _blend_into(mel, piece, window, scale)
            # Columns before the next window's crossfade get nothing more: they are final.
            mel_final = (window.stop - window.fade_out) * scale
            progress.tick()
            while next_vocoder < len(vocoder_windows) and vocoder_windows[next_vocoder].hi <= mel_final:
                voc = vocoder_windows[next_vocoder]
                for c in range(mel.shape[1]):
                    progress.check()
                    out = self.vocoder(mel[:, c, :, voc.lo : voc.hi].to(vocoder_dtype)).reshape(-1)
                    out = out[(voc.start - voc.lo) * hop : (voc.stop - voc.lo) * hop]
                    _blend_into(wav[c], out.float(), voc, hop)
                    progress.tick()
                next_vocoder += 1
                final = (voc.stop - voc.fade_out) * hop
                if on_audio is not None and final > handed_out:
                    on_audio(wav[:, handed_out:final])
                handed_out = final
        assert mel is not None and wav is not None and next_vocoder == len(vocoder_windows)
        return mel, wav.unsqueeze(0)


class _Progress:
    """Counts decode units for ``on_window`` and checks ``cancel`` between them."""

    def __init__(self, on_window: Callable[[int, int], None] | None, cancel: "CancelToken | None", total: int) -> None:
        self.on_window = on_window
        self.cancel = cancel
        self.done = 0
        self.total = total

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.check()

    def tick(self) -> None:
        self.done += 1
        if self.on_window is not None:
            self.on_window(self.done, self.total)
        self.check()
