"""One MusicGen generation: prompt -> 32 kHz float32 audio, with progress and cancel.

transformers' ``MusicgenForConditionalGeneration.generate`` runs three stages in one call:
the T5 text encoder, the token loop, and the EnCodec decode. We watch all three without
changing them:

- text: a forward hook on the text encoder marks the end of the phase;
- tokens: a logits processor runs once per decoder step, before sampling. It checks the
  cancel flag (raising our ``JobCancelled`` unwinds ``generate`` cleanly and stops within
  one token; a ``StoppingCriteria`` returning True crashes MusicGen's reshape of the delay
  pattern in transformers 5.23, and ``streamer=`` is broken there), rejects NaN/inf
  logits and reports the step;
- decode: a pre/post hook pair on the EnCodec decoder module (called once per channel).

MusicGen samples with the global torch RNG, so the seed is set right before ``generate``;
the daemon runs jobs one at a time in one worker thread, which makes that safe.

A continuation (``request.continue_from``, continuation.py) first encodes the source's tail
into EnCodec codes (phase ``encode``) and passes them as ``decoder_input_ids``: the decoder
reads them in one prefill forward (phase ``prefill``, no hook: the first token ends it) and
generates only the frames after them, with the same sampling, hooks and checks.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from ...device import ResolvedDevice, empty_cache
from ...errors import JobCancelled, LofiError, ModelInferenceFailed
from ...cancel import CancelToken
from ..base import GeneratedAudio, GenerationRequest, Progress
from .continuation import RATE as CONTINUATION_RATE, Prompt, join, prompt_codes, read_prompt
from .lengths import TokenGrid

log = logging.getLogger(__name__)

RETRY_HINT = "Retry with another seed."

# Relative cost of the phases in units of one decoder step, from bench/bench_musicgen.py at
# musicgen-small's real shape (docs/benchmarks.md (MusicGen section)): on CPU the text encoder costs
# 0.7-1.1 steps and EnCodec 0.013-0.029 steps per frame. CUDA and MPS are estimates until
# measured; decoding is a few percent of a track there too, so an error moves the percent
# by a point or two at most.
TEXT_COST_STEPS = 1.0
DECODE_COST_PER_FRAME = {"cpu": 0.025, "cuda": 0.002, "mps": 0.02}
# A continuation's extra phases, per prompt frame (and channel, for the encode). CPU: measured at
# musicgen-small's real shape on a quiet machine, 0.017 and 0.134 (0.009 and 0.066 under load;
# docs/musicgen.md, "Continuing a track"; the prefill runs twice in transformers). The GPU values
# are estimates, like the decode's.
ENCODE_COST_PER_FRAME = {"cpu": 0.017, "cuda": 0.001, "mps": 0.01}
PREFILL_COST_PER_FRAME = {"cpu": 0.13, "cuda": 0.002, "mps": 0.02}


@dataclass
class MusicgenSession:
    """What ``generate`` needs from a loaded checkpoint."""

    model: Any  # MusicgenForConditionalGeneration
    processor: Any  # MusicgenProcessor
    grid: TokenGrid
    audio_channels: int
    device: ResolvedDevice
    model_id: str
    revision: str


def phase_plan(grid: TokenGrid, frames: int, tokens: int, audio_channels: int, device: str,
               prompt_frames: int = 0) -> list[tuple[str, float]]:
    """Phases in decoder-step units; ``tokens`` counts generated steps only (a prompt is read, not made)."""
    decode = DECODE_COST_PER_FRAME.get(device, DECODE_COST_PER_FRAME["cpu"]) * frames * audio_channels
    if not prompt_frames:
        return [("text", TEXT_COST_STEPS), ("tokens", float(tokens)), ("decode", max(decode, 1e-3))]
    encode = ENCODE_COST_PER_FRAME.get(device, ENCODE_COST_PER_FRAME["cpu"]) * prompt_frames * audio_channels
    prefill = PREFILL_COST_PER_FRAME.get(device, PREFILL_COST_PER_FRAME["cpu"]) * prompt_frames
    return [("encode", max(encode, 1e-3)), ("text", TEXT_COST_STEPS), ("prefill", max(prefill, 1e-3)),
            ("tokens", float(tokens)), ("decode", max(decode, 1e-3))]


class TokenHook:
    """A logits processor that never changes the scores: cancel, NaN check, progress."""

    def __init__(self, total: int, progress: Progress, cancel: CancelToken) -> None:
        self.total = total
        self.step = 0  # decoder steps whose logits were computed
        self._progress = progress
        self._cancel = cancel

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # Step ``self.step + 1`` has been computed but not sampled yet: a cancel seen here
        # leaves ``self.step`` finished tokens and runs no further forward pass.
        self._cancel.check(self.step, self.total)
        # Raw logits (our hook runs before CFG and the warpers). ``.item()`` also waits for
        # the GPU, so progress and cancel follow the real step instead of the queued one.
        if not bool(torch.isfinite(scores).all().item()):
            raise ModelInferenceFailed(
                f"musicgen produced NaN/inf logits at token {self.step + 1} of {self.total}",
                hint=RETRY_HINT,
                at_step=self.step + 1,
                total_steps=self.total,
            )
        self.step += 1
        self._progress.update("tokens", self.step, self.total)
        return scores


@contextmanager
def _phase_hooks(model: Any, progress: Progress, cancel: CancelToken, tokens: int, decodes: int) -> Iterator[None]:
    done = {"decode": 0}

    def text_done(_module, _args, _output) -> None:
        progress.update("text", 1, 1)

    def decode_starts(_module, _args) -> None:
        cancel.check(tokens, tokens)

    def decode_done(_module, _args, _output) -> None:
        done["decode"] += 1
        progress.update("decode", min(done["decode"], decodes), decodes)

    handles = [
        model.text_encoder.register_forward_hook(text_done),
        model.audio_encoder.decoder.register_forward_pre_hook(decode_starts),
        model.audio_encoder.decoder.register_forward_hook(decode_done),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def sampling_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """Our parameter names and conventions -> ``generate`` keyword arguments."""
    top_p = float(params.get("top_p", 0.0))
    return {
        "do_sample": True,
        "guidance_scale": float(params.get("guidance_scale", 3.0)),
        "temperature": float(params.get("temperature", 1.0)),
        "top_k": int(params.get("top_k", 250)),  # 0 turns top-k off
        # audiocraft's convention: top_p = 0 means "off"; transformers would read 0 as greedy.
        "top_p": top_p if top_p > 0.0 else 1.0,
    }


def generate(session: MusicgenSession, request: GenerationRequest, progress: Progress,
             cancel: CancelToken) -> GeneratedAudio:
    grid = session.grid
    frames = grid.frames_for(request.duration_sec)
    device = session.device.device
    prompt: Prompt | None = None
    if request.continue_from is not None:  # read before the plan: its length sets the plan
        prompt = read_prompt(request.continue_from, grid, request.duration_sec, session.audio_channels)
    prompt_frames = prompt.frames if prompt is not None else 0
    tokens = grid.new_tokens(frames, prompt_frames)
    progress.plan(phase_plan(grid, frames, tokens, session.audio_channels, device, prompt_frames))
    cancel.check(0, tokens)

    hook = TokenHook(tokens, progress, cancel)
    kwargs = sampling_kwargs(request.params)
    stopped: tuple[int, int] | None = None
    try:
        if prompt is not None:
            progress.update("encode", 0, 1)
            kwargs["decoder_input_ids"] = prompt_codes(session.model, prompt, device)
            progress.update("encode", 1, 1)
            cancel.check(0, tokens)
        progress.update("text", 0, 1)
        inputs = session.processor(text=[request.prompt], padding=True, truncation=True, max_length=512,
                                   return_tensors="pt").to(device)
        with _phase_hooks(session.model, progress, cancel, tokens, session.audio_channels), torch.inference_mode():
            torch.manual_seed(request.seed)  # also seeds every CUDA/MPS device
            audio = session.model.generate(**inputs, max_new_tokens=tokens, logits_processor=[hook], **kwargs)
    except JobCancelled as exc:
        stopped = (exc.at_step, exc.total_steps)
    except LofiError:
        raise
    except RuntimeError as exc:  # CUDA OOM, kernel failures, NaN probabilities in sampling
        log.exception("musicgen generation failed at token %d/%d", hook.step, tokens)
        oom = "out of memory" in str(exc).lower()
        raise ModelInferenceFailed(
            f"musicgen failed at token {hook.step} of {tokens}: {exc}",
            hint="Free GPU memory or pick a shorter duration or smaller model." if oom else RETRY_HINT,
            at_step=hook.step,
            total_steps=tokens,
        ) from None
    if stopped is not None:
        # Raised outside the ``except`` so the traceback (and with it the key/value cache
        # held by generate's frames) is gone before we ask the allocator to release memory.
        empty_cache(device)
        raise JobCancelled(*stopped)

    metadata: dict[str, Any] = {
        **session.device.describe(),
        "model_id": session.model_id,
        "revision": session.revision,
        "tokens": tokens,
        "frames": frames,
        "model_channels": session.audio_channels,
    }
    if prompt is None:
        samples, rate = _to_output(audio, grid.samples_for(request.duration_sec)), grid.sample_rate
    else:
        # Built at 48 kHz, so its first ``join_frame`` frames are the source's own samples.
        decoded = _to_output(audio, frames * grid.hop_length, stereo=False)
        rate = CONTINUATION_RATE
        samples = join(prompt, decoded, grid.sample_rate, round(request.duration_sec * rate))
        metadata.update({
            "continues": prompt.track_id,
            "join_frame": prompt.join_frame,  # where the new part begins, in the written file's frames
            "prompt_frames": prompt.frames,
            "prompt_sec": round(prompt.frames / grid.frame_rate, 3),
        })
    if not np.isfinite(samples).all():
        raise ModelInferenceFailed("musicgen decoded NaN/inf audio", hint=RETRY_HINT)
    return GeneratedAudio(samples=samples, sample_rate=rate, metadata=metadata)


def _to_output(audio: torch.Tensor, wanted_samples: int, stereo: bool = True) -> np.ndarray:
    """(1, channels, n) model output -> float32 (2, wanted) numpy; mono is duplicated
    (``stereo=False``: kept as it is, for a continuation that resamples first)."""
    clip = audio[0, :, :wanted_samples].detach().to(device="cpu", dtype=torch.float32)
    if clip.shape[-1] < wanted_samples:  # cannot happen with whole frames; guard the contract
        raise ModelInferenceFailed(f"musicgen returned {clip.shape[-1]} samples, expected {wanted_samples}",
                                   hint=RETRY_HINT)
    if clip.shape[0] == 1 and stereo:
        # Every lofi track is stereo; MusicGen mono plays identically on both sides.
        clip = clip.expand(2, -1)
    return np.ascontiguousarray(clip.numpy(), dtype=np.float32)
