"""Continuing a library track: its last seconds prompt MusicGen, and the new track begins with them.

The radio's flow plays the old file to its very last sample, then the new file from
``join_frame`` (48 kHz frames). So the new file is built at 48 kHz, in three parts:

- ``[0, join_frame)``: the source's own last samples, unchanged (not EnCodec's reconstruction,
  which at 2.2 kbps is another waveform: the file begins exactly as the old track ends, and the
  only change the track writer makes is its 5 ms fade-in at the very start).
- ``[join_frame, join_frame + JOIN_FADE)``: what is heard right after the old track's last sample.
  It starts with the source's tail mirrored about that last sample (so the waveform goes on from
  the value the old track stopped at, and an old track that faded out to silence fades back in
  from it) and crossfades into the model's audio (raised cosine). A crossfade *before*
  ``join_frame`` would never be heard in flow: the worker plays the old file there, not ours.
- after that: the model's audio, decoded by EnCodec from prompt + new codes and resampled to
  48 kHz as one piece, so nothing shows at the join.

The model hears the same tail at its own rate (32 kHz; mono checkpoints a mix of both sides) as
EnCodec codes, given to ``generate`` as the decoder prompt. The source file is untrusted like every
file the daemon reads: anything wrong with it is INVALID_PARAMS on ``continue_from``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import audio
from ...errors import InvalidParams
from ...files import descriptor_path, open_regular
from ..base import Continuation
from .lengths import MIN_PROMPT_SEC, TokenGrid

if TYPE_CHECKING:
    import torch

RATE = audio.OUTPUT_SAMPLE_RATE  # library files and the tracks we write are 48 kHz
JOIN_FADE_SEC = 0.06  # long enough to hide the codec's change of timbre, short enough not to smear a beat
# Library tracks are at most 240 s of 16-bit stereo (46 MB as WAV); these bounds only keep a
# planted file from taking the daemon's memory.
MAX_SOURCE_BYTES = 512 * 2**20
MAX_SOURCE_SAMPLES = 600 * RATE * 2  # 10 minutes of 48 kHz stereo, 230 MB as float32
RESAMPLE_CONTEXT = 4800  # 0.1 s before the tail, so the resampler's start-up is not in the prompt

OTHER_TRACK_HINT = "Continue another track, or leave continue_from out for a fresh one."


@dataclass(frozen=True)
class Prompt:
    """The source's tail: as it goes into the new file, and as the model hears it."""

    track_id: str
    frames: int  # EnCodec frames of the prompt
    head: np.ndarray  # (2, join_frame) float32 at 48 kHz: the source's last samples
    model_audio: np.ndarray  # (model channels, frames * hop) float32 at the model's rate

    @property
    def join_frame(self) -> int:
        return int(self.head.shape[-1])


def read_prompt(source: Continuation, grid: TokenGrid, duration_sec: float, model_channels: int) -> Prompt:
    """The prompt for a ``duration_sec`` continuation of ``source`` (INVALID_PARAMS when unusable)."""
    tail_audio = _read_source(Path(source.path))
    source_frames = tail_audio.shape[-1]
    out_per_frame = grid.hop_length * RATE / grid.sample_rate  # 960 output frames per EnCodec frame
    if not float(out_per_frame).is_integer():  # cannot happen with EnCodec 32 kHz (640 -> 960)
        raise InvalidParams(f"musicgen cannot continue audio at {grid.sample_rate} Hz", field="continue_from",
                            hint="Leave continue_from out with this checkpoint.")
    out_per_frame = int(out_per_frame)
    frames = min(grid.prompt_frames(duration_sec, source_frames / RATE), source_frames // out_per_frame)
    if frames < grid.min_prompt_frames:
        raise InvalidParams(
            f"the track to continue ({source.track_id}) is {source_frames / RATE:.2f} s long; "
            f"a continuation needs at least {MIN_PROMPT_SEC:g} s of it",
            field="continue_from", source_sec=round(source_frames / RATE, 3), minimum_sec=MIN_PROMPT_SEC,
            hint=OTHER_TRACK_HINT)
    keep = frames * out_per_frame
    head = np.ascontiguousarray(tail_audio[:, -keep:])

    # At the model's rate: resample with a little of what came before, then cut exactly.
    ratio = math.gcd(RATE, grid.sample_rate)
    step = RATE // ratio  # input frames that map to a whole number of output samples
    context = min(RESAMPLE_CONTEXT, (source_frames - keep) // step * step)
    piece = tail_audio[:, source_frames - keep - context:]
    resampled = audio.resample(piece, RATE, grid.sample_rate) if grid.sample_rate != RATE else piece
    wanted = frames * grid.hop_length
    model_audio = resampled[:, -wanted:] if resampled.shape[-1] >= wanted else None
    if model_audio is None or model_audio.shape[-1] != wanted:  # guards the arithmetic above
        raise InvalidParams(f"could not prepare {wanted} prompt samples from {source.track_id}",
                            field="continue_from", hint=OTHER_TRACK_HINT)
    if model_channels == 1:
        model_audio = model_audio.mean(axis=0, keepdims=True)
    return Prompt(track_id=source.track_id, frames=frames, head=head,
                  model_audio=np.ascontiguousarray(model_audio, dtype=np.float32))


def _read_source(path: Path) -> np.ndarray:
    """The whole source as float32 stereo at 48 kHz; every fault is INVALID_PARAMS."""
    try:
        fd = open_regular(path, MAX_SOURCE_BYTES)  # never blocks on a FIFO; bounded size
    except Exception as exc:  # noqa: BLE001 - a library file is untrusted: missing, a FIFO, too big
        raise InvalidParams(f"cannot read the track to continue ({path.name}): {exc}", field="continue_from",
                            hint=OTHER_TRACK_HINT) from None
    try:
        name = Path(descriptor_path(fd, path))  # exactly the file checked above
        frames, rate, channels = audio.probe(name)
        if not 8000 <= rate <= 384_000 or channels < 1 or frames < 0:
            raise ValueError(f"{rate} Hz, {channels} channels is not a track")
        if frames * channels > MAX_SOURCE_SAMPLES:
            raise ValueError(f"{frames / rate:.0f} s of {channels} channels is more than a track has")
        samples, rate = audio.read(name)
    except Exception as exc:  # noqa: BLE001 - not audio, truncated, a codec error: all the file's fault
        raise InvalidParams(f"the track to continue ({path.name}) is not readable audio: {exc}",
                            field="continue_from", hint=OTHER_TRACK_HINT) from None
    finally:
        os.close(fd)
    if samples.shape[-1] == 0 or not np.isfinite(samples).all():
        raise InvalidParams(f"the track to continue ({path.name}) has no usable samples (empty, NaN or inf)",
                            field="continue_from", hint=OTHER_TRACK_HINT)
    samples = samples[:2] if samples.shape[0] >= 2 else np.repeat(samples, 2, axis=0)
    if rate != RATE:
        samples = audio.resample(samples, rate, RATE)
    return np.ascontiguousarray(samples, dtype=np.float32)


def prompt_codes(model: Any, prompt: Prompt, device: str) -> "torch.Tensor":
    """EnCodec codes of the prompt in the decoder's layout: ``(codebooks, frames)``, stereo
    checkpoints interleaving left and right codebooks as MusicGen predicts them."""
    import torch

    x = torch.from_numpy(prompt.model_audio).unsqueeze(0).to(device=device, dtype=torch.float32)
    per_channel = []
    with torch.inference_mode():
        for channel in range(x.shape[1]):
            encoded = model.audio_encoder.encode(x[:, channel:channel + 1], return_dict=True)
            if encoded.audio_codes.shape[0] != 1 or any(s is not None for s in encoded.audio_scales):
                # The 32 kHz EnCodec of every MusicGen checkpoint neither chunks nor normalises.
                raise InvalidParams("this checkpoint's EnCodec chunks or normalises audio; musicgen cannot "
                                    "continue with it", field="continue_from",
                                    hint="Leave continue_from out with this checkpoint.")
            per_channel.append(encoded.audio_codes[0, 0])  # (codebooks, frames)
    if len(per_channel) == 1:
        codes = per_channel[0]
    else:
        left, right = per_channel
        codes = torch.empty((2 * left.shape[0], left.shape[1]), dtype=left.dtype, device=left.device)
        codes[0::2], codes[1::2] = left, right
    if codes.shape[-1] != prompt.frames:
        raise InvalidParams(f"EnCodec made {codes.shape[-1]} frames of a {prompt.frames}-frame prompt",
                            field="continue_from", hint=OTHER_TRACK_HINT)
    return codes


def join(prompt: Prompt, decoded: np.ndarray, decoded_rate: int, total: int) -> np.ndarray:
    """The new track at 48 kHz, ``total`` frames: the source's tail, then the model's audio.

    ``decoded`` is EnCodec's whole output (prompt frames included) at ``decoded_rate``; its part
    from ``join_frame`` on is the new music.
    """
    new = audio.resample(decoded, decoded_rate, RATE) if decoded_rate != RATE else decoded
    if new.shape[0] == 1:
        new = np.repeat(new, 2, axis=0)  # mono checkpoints: both sides alike, as in a plain track
    at = prompt.join_frame
    if new.shape[-1] < total or total <= at:
        raise InvalidParams(f"a continuation of {total} frames cannot keep {at} frames of the source",
                            field="continue_from", hint=OTHER_TRACK_HINT)
    out = np.empty((2, total), dtype=np.float32)
    out[:, :at] = prompt.head
    out[:, at:] = new[:, at:total]
    fade = min(round(JOIN_FADE_SEC * RATE), total - at, at - 1)
    if fade > 0:
        t = np.arange(fade, dtype=np.float64)
        mirrored = prompt.head[:, at - 2 - t.astype(np.int64)]  # reflected about the last sample
        rise = (np.sin(0.5 * np.pi * t / fade) ** 2).astype(np.float32)
        out[:, at:at + fade] = rise * out[:, at:at + fade] + (1.0 - rise) * mirrored
    return out
