"""AceStepPipeline: instrumental text-to-music with ACE-Step v1, step for step like the official code.

    prompt --UMT5--> text states (+ ERG-tag "null" text)
           --transformer.encode--> encoder states, cond and null, once per generation
    seed --torch.Generator on the pipeline device--> noise [1, 8, 16, F]
    denoising loop (euler / heun / pingpong): one transformer call per step, or one
           batched cond+uncond call inside the guidance window (APG or CFG)
    latents --DCAE decoder + vocoder--> 44.1 kHz stereo --resample--> 48 kHz
           (in time order: ``on_audio`` gets each finished 48 kHz piece as it is decoded)

The official pipeline's numbers are the contract: with the same checkpoint, prompt,
seed and parameters on the same device it gives the same track (checked against the
official code's golden references, ``tests/ace_step/test_pipeline_parity.py``). Where
we differ on purpose it is listed in ``docs/ace_step.md``.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch

from ...errors import InvalidParams, JobCancelled, ModelInferenceFailed
from .checkpoint import load_transformer
from .lyric_tokens import encode_lyrics
from .text_encoder import ERG_TAG_BLOCKS, TextEncoder
from .transformer import ERG_DIFFUSION_BLOCKS, AceStepTransformer

log = logging.getLogger(__name__)

SAMPLE_RATE_44K = 44_100
SAMPLE_RATE = 48_000
SAMPLES_PER_FRAME = 512 * 8  # vocoder hop x mel frames per latent frame
SPEAKER_DIM = 512
MIN_DURATION_SEC = 1.0
MAX_DURATION_SEC = 240.0
SCHEDULERS = ("euler", "heun", "pingpong")
CFG_TYPES = ("apg", "cfg")
RESAMPLERS = ("soxr", "sinc_hann")
RETRY_HINT = "Retry with another seed."


class Cancel(Protocol):
    def check(self, at_step: int = 0, total_steps: int = 0) -> None: ...


#: ``progress(phase, current, total)`` with phases "text", "diffusion", "decode".
ProgressFn = Callable[[str, int, int], None]
#: ``on_audio(samples)``: a finished piece of the track, ``[2, n]`` float32 numpy at 48 kHz.
AudioFn = Callable[[Any], None]


def frame_length(duration: float) -> int:
    """Latent frames for ``duration`` seconds: floors, like the official code."""
    return int(duration * SAMPLE_RATE_44K / 512 / 8)


def transformer_calls(infer_step: int, scheduler_type: str) -> int:
    """Loop iterations of the denoising loop (heun makes 2N-1)."""
    return 2 * infer_step - 1 if scheduler_type == "heun" else infer_step


def guided_calls(infer_step: int, scheduler_type: str, guidance_scale: float, guidance_interval: float) -> int:
    """How many of those iterations are guided (a batch of two): the loop's own rule."""
    from .guidance import guidance_window

    if guidance_scale in (0.0, 1.0):
        return 0
    start, end = guidance_window(infer_step, guidance_interval)
    return len(range(start, min(end, transformer_calls(infer_step, scheduler_type))))


@dataclass(frozen=True)
class Guidance:
    """How the denoising loop guides, as the official ``__call__`` arguments name it."""

    infer_step: int
    cfg_type: str
    guidance_scale: float
    omega_scale: float
    guidance_interval: float
    guidance_interval_decay: float
    min_guidance_scale: float
    use_erg_diffusion: bool


@dataclass
class PipelineOutput:
    wav_48k: torch.Tensor  # [2, N] float32, CPU
    sample_rate: int
    frame_length: int
    intermediates: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def duration_sec(self) -> float:
        return self.wav_48k.shape[-1] / self.sample_rate


class AceStepPipeline:
    def __init__(
        self,
        transformer: AceStepTransformer,
        text_encoder: TextEncoder,
        decoder: Any,
        *,
        device: str | torch.device,
        dtype: torch.dtype,
        offload: bool = False,
    ) -> None:
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.decoder = decoder
        self.device = torch.device(device)
        self.dtype = dtype
        #: Low-VRAM mode: components live on the CPU and visit the device while they run.
        self.offload = offload

    @classmethod
    def from_checkpoint(
        cls,
        root: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        offload: bool = False,
        compile: bool = False,
    ) -> "AceStepPipeline":
        """Load the official folder layout (see ``checkpoint.py``); offline, used weights only.

        ``compile`` compiles the transformer's repeated block with ``torch.compile`` (static
        shapes: one compile per track length). One block graph serves every block, so the
        compile does not grow with the depth: two small graphs per length (unguided batch 1,
        guided batch 2) instead of the whole 24-block network. It pays off on a GPU
        over many calls; on a 2-core CPU the first call of the tiny model waits ~45 s.
        """
        from .decode import AudioDecoder

        root = Path(root)
        home = torch.device("cpu") if offload else torch.device(device)
        transformer = load_transformer(root, device=home, dtype=dtype)
        text_encoder = TextEncoder.from_dir(root / "umt5-base", device=home, dtype=dtype)
        decoder = AudioDecoder.from_checkpoint(root, device=home, dtype=dtype)
        if compile:
            transformer.uniform_block_args = True
            for block in transformer.transformer_blocks:
                block.compile(dynamic=False)
        return cls(transformer, text_encoder, decoder, device=device, dtype=dtype, offload=offload)

    # -- inputs --------------------------------------------------------------------------

    def check_inputs(
        self,
        prompt: Any,
        duration: Any,
        infer_step: Any,
        seed: Any,
        scheduler_type: Any,
        cfg_type: Any,
        guidance_scale: Any,
        omega_scale: Any,
        guidance_interval: Any,
        guidance_interval_decay: Any,
        min_guidance_scale: Any,
        use_erg_tag: Any,
        use_erg_lyric: Any,
        use_erg_diffusion: Any,
        lyrics: Any,
        resample: Any,
    ) -> None:
        """Raise INVALID_PARAMS naming the argument and its allowed range."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidParams("prompt must be a non-empty string", field="prompt")
        _number("duration", duration, MIN_DURATION_SEC, MAX_DURATION_SEC)
        _integer("infer_step", infer_step, 1, 200)
        _integer("seed", seed, 0, 2**63 - 1)
        _choice("scheduler_type", scheduler_type, SCHEDULERS)
        _choice("cfg_type", cfg_type, CFG_TYPES)
        _number("guidance_scale", guidance_scale, 0.0, 200.0)
        _number("omega_scale", omega_scale, -100.0, 100.0)
        _number("guidance_interval", guidance_interval, 0.0, 1.0)
        _number("guidance_interval_decay", guidance_interval_decay, 0.0, 1.0)
        _number("min_guidance_scale", min_guidance_scale, 0.0, 200.0)
        for name, flag in (("use_erg_tag", use_erg_tag), ("use_erg_lyric", use_erg_lyric),
                           ("use_erg_diffusion", use_erg_diffusion)):
            if not isinstance(flag, bool):
                raise InvalidParams(f"{name} must be true or false", field=name)
        _choice("resample", resample, RESAMPLERS)
        encode_lyrics(lyrics)  # raises INVALID_PARAMS for anything but the instrumental tags
        # The ERG options address blocks by fixed index, as in the official code.
        blocks = len(self.transformer.transformer_blocks)
        if use_erg_diffusion and blocks <= ERG_DIFFUSION_BLOCKS[-1]:
            raise InvalidParams(
                f"use_erg_diffusion needs a transformer with at least {ERG_DIFFUSION_BLOCKS[-1] + 1} blocks; "
                f"this checkpoint has {blocks}", field="use_erg_diffusion")
        umt5_blocks = len(self.text_encoder.model.encoder.block)
        if use_erg_tag and umt5_blocks <= max(ERG_TAG_BLOCKS):
            raise InvalidParams(
                f"use_erg_tag needs a text encoder with at least {max(ERG_TAG_BLOCKS) + 1} blocks; "
                f"this checkpoint has {umt5_blocks}", field="use_erg_tag")
        lyric_blocks = len(self.transformer.lyric_encoder.encoders)
        if use_erg_lyric and lyric_blocks < 6:
            raise InvalidParams(
                f"use_erg_lyric needs a lyric encoder with at least 6 blocks; this checkpoint has {lyric_blocks}",
                field="use_erg_lyric")

    # -- the call ----------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        duration: float = 60.0,
        infer_step: int = 60,
        seed: int = 0,
        scheduler_type: str = "euler",
        cfg_type: str = "apg",
        guidance_scale: float = 15.0,
        omega_scale: float = 10.0,
        guidance_interval: float = 0.5,
        guidance_interval_decay: float = 0.0,
        min_guidance_scale: float = 3.0,
        use_erg_tag: bool = True,
        use_erg_lyric: bool = True,
        use_erg_diffusion: bool = True,
        lyrics: str = "",
        *,
        progress: ProgressFn | None = None,
        cancel: Cancel | None = None,
        return_intermediates: bool = False,
        resample: str = "soxr",
        windowed_decode: bool | None = None,
        on_audio: AudioFn | None = None,
    ) -> PipelineOutput:
        """Defaults are the official ``__call__`` defaults (except ``seed``, which we always
        need: the daemon draws one when the user gives none).

        ``on_audio`` receives the 48 kHz track in time order as the decode finishes it (one
        piece per vocoder window when windowed, the whole track at the end when not); the
        pieces joined are exactly ``wav_48k``, which is computed the same way without it."""
        self.check_inputs(prompt, duration, infer_step, seed, scheduler_type, cfg_type, guidance_scale,
                          omega_scale, guidance_interval, guidance_interval_decay, min_guidance_scale,
                          use_erg_tag, use_erg_lyric, use_erg_diffusion, lyrics, resample)
        report = progress or (lambda phase, current, total: None)
        keep: dict[str, torch.Tensor] = {}

        def record(name: str, value: torch.Tensor) -> None:
            if return_intermediates:
                keep[name] = value.detach().to("cpu", torch.float32 if value.is_floating_point() else value.dtype)

        device, dtype = self.device, self.dtype

        # 1. Seeded generator on the pipeline device (CPU and CUDA streams differ).
        generator = torch.Generator(device=device).manual_seed(int(seed))

        # 2. Text: UMT5 states for the prompt, and the ERG-tag "null" text.
        report("text", 0, 1)
        with self._placed(self.text_encoder.model):
            text = self.text_encoder.encode(prompt)
            text_null = self.text_encoder.encode(prompt, erg=True).hidden_states if use_erg_tag else None
        record("prompt_input_ids", text.input_ids)
        record("prompt_attention_mask", text.attention_mask)
        record("text_hidden_states", text.hidden_states)
        if text_null is not None:
            record("text_hidden_states_erg_null", text_null)

        # 3. Speaker (unsupported by the released checkpoint: zeros) and lyric tokens.
        speaker = torch.zeros(1, SPEAKER_DIM, device=device, dtype=dtype)
        tokens = encode_lyrics(lyrics)
        lyric_ids = torch.tensor([tokens.ids], dtype=torch.long, device=device)
        lyric_mask = torch.tensor([tokens.mask], dtype=torch.long, device=device)
        record("lyric_token_idx", lyric_ids)
        record("lyric_mask", lyric_mask)

        # 4. Schedule.
        from .schedulers import make_scheduler

        scheduler = make_scheduler(scheduler_type)
        scheduler.set_timesteps(infer_step, device)
        timesteps = scheduler.timesteps
        record("timesteps", timesteps)
        record("sigmas", scheduler.sigmas)

        # 5. Initial noise: drawn exactly once, exactly like diffusers' randn_tensor.
        frames = frame_length(duration)
        latents = torch.randn((1, 8, 16, frames), generator=generator, device=device, dtype=dtype)
        record("initial_noise", latents)
        attention_mask = torch.ones(1, frames, device=device, dtype=dtype)

        with self._placed(self.transformer):
            # 6. Encoder states, once per generation: conditional and null branch.
            text_states = text.hidden_states.to(dtype)
            cond, cond_mask = self.transformer.encode(
                text_states, text.attention_mask, speaker, lyric_ids, lyric_mask)
            if use_erg_lyric:
                null_text = text_null.to(dtype) if text_null is not None else torch.zeros_like(text_states)
                null, null_mask = self.transformer.encode(
                    null_text, text.attention_mask, torch.zeros_like(speaker), lyric_ids, lyric_mask,
                    erg_lyric=True)
            else:
                null, null_mask = self.transformer.encode(
                    torch.zeros_like(text_states), text.attention_mask, torch.zeros_like(speaker),
                    torch.zeros_like(lyric_ids), lyric_mask)
            record("encoder_hidden_states_cond", cond)
            record("encoder_hidden_mask", cond_mask)
            record("encoder_hidden_states_null", null)
            record("encoder_hidden_mask_null", null_mask)
            report("text", 1, 1)

            # 7. Denoising loop.
            guidance = Guidance(infer_step, cfg_type, guidance_scale, omega_scale, guidance_interval,
                                guidance_interval_decay, min_guidance_scale, use_erg_diffusion)
            latents = self._denoise(latents, attention_mask, cond, null, cond_mask, scheduler, generator, guidance,
                                    report=report, cancel=cancel, record=record if return_intermediates else None)
        record("final_latents", latents)

        # 8. Decode to 44.1 kHz (windowed above ~48 s unless told), then resample to 48 kHz.
        wav_48k = self._decode(latents, windowed=windowed_decode, resample=resample, report=report,
                               cancel=cancel, record=record, on_audio=on_audio)
        record("wav_48k", wav_48k)
        return PipelineOutput(wav_48k=wav_48k, sample_rate=SAMPLE_RATE, frame_length=frames, intermediates=keep)

    # -- steps -------------------------------------------------------------------------

    def _denoise(
        self,
        latents: torch.Tensor,
        attention_mask: torch.Tensor,
        cond: torch.Tensor,
        null: torch.Tensor,
        mask: torch.Tensor,
        scheduler: Any,
        generator: torch.Generator,
        g: Guidance,
        *,
        report: ProgressFn,
        cancel: Cancel | None,
        record: Callable[[str, torch.Tensor], None] | None,
    ) -> torch.Tensor:
        """The loop: one transformer call per scheduler timestep; inside the guidance window
        one batched [cond; uncond] call, combined by APG or CFG. ``record`` keeps per-step tensors."""
        from .guidance import MomentumBuffer, apg_forward, cfg_forward, guidance_scale_at, guidance_window

        do_guidance = g.guidance_scale not in (0.0, 1.0)
        # From the *requested* step count, as the official code does (also for heun's 2N-1 calls).
        start, end = guidance_window(g.infer_step, g.guidance_interval)
        total_calls = len(scheduler.timesteps)
        momentum = MomentumBuffer()
        # The batched context of guided steps is built once: [cond; null], the null branch
        # using the *cond* mask as the official code does.
        both_states = torch.cat([cond, null])
        both_masks = torch.cat([mask, mask])
        both_attention = torch.cat([attention_mask, attention_mask])
        erg_rows = torch.tensor([False, g.use_erg_diffusion], device=latents.device)
        frames = latents.shape[-1]

        steps: dict[str, list[torch.Tensor]] = {k: [] for k in (
            "step_timestep", "step_pred_cond", "guided_pred_uncond", "step_model_output", "step_latents_out")}
        guided_indices: list[int] = []
        report("diffusion", 0, total_calls)
        for i, t in enumerate(scheduler.timesteps):
            if cancel is not None:
                cancel.check(i, total_calls)
            guided = do_guidance and start <= i < end
            if guided:
                scale = guidance_scale_at(i, start, end, g.guidance_scale, g.min_guidance_scale,
                                          g.guidance_interval_decay)
                both = self.transformer.decode(
                    torch.cat([latents, latents]), both_attention, both_states, both_masks, t.expand(2), frames,
                    erg_diffusion=erg_rows)
                pred_cond, pred_uncond = both.chunk(2)
                if g.cfg_type == "apg":
                    velocity = apg_forward(pred_cond, pred_uncond, scale, momentum)
                else:
                    velocity = cfg_forward(pred_cond, pred_uncond, scale)
                guided_indices.append(i)
            else:
                pred_cond = self.transformer.decode(latents, attention_mask, cond, mask, t.expand(1), frames)
                pred_uncond = None
                velocity = pred_cond
            latents = scheduler.step(velocity, t, latents, omega=g.omega_scale, generator=generator)
            if not bool(torch.isfinite(latents).all()):
                raise ModelInferenceFailed(
                    f"the latents became NaN/inf at denoising call {i + 1} of {total_calls}",
                    hint=RETRY_HINT, at_step=i + 1, total_steps=total_calls)
            if record is not None:
                steps["step_timestep"].append(t.reshape(()))
                steps["step_pred_cond"].append(pred_cond)
                if pred_uncond is not None:
                    steps["guided_pred_uncond"].append(pred_uncond)
                steps["step_model_output"].append(velocity)
                steps["step_latents_out"].append(latents)
            report("diffusion", i + 1, total_calls)
        if record is not None:
            for name, values in steps.items():
                if values:
                    record(name, torch.stack(values))
            record("guided_loop_indices", torch.tensor(guided_indices, dtype=torch.long))
        return latents

    def _decode(
        self,
        latents: torch.Tensor,
        *,
        windowed: bool | None,
        resample: str,
        report: ProgressFn,
        cancel: Cancel | None,
        record: Callable[[str, torch.Tensor], None],
        on_audio: AudioFn | None = None,
    ) -> torch.Tensor:
        import numpy as np

        from .resample import StreamResampler, output_length

        windows = [0, 1]  # decode units done / total, for a cancel that lands mid-decode

        def on_window(done: int, total: int) -> None:
            windows[:] = [done, total]
            report("decode", done, total)

        # The 48 kHz track is written piece by piece into one array: no second copy of it.
        channels = int(self.decoder.dcae.config.get("in_channels", 2))
        out = np.zeros((channels, output_length(SAMPLES_PER_FRAME * latents.shape[-1])), dtype=np.float32)
        resampler = StreamResampler(out.shape[0], resample)
        written = 0

        def put(piece: Any) -> None:
            nonlocal written
            if piece.shape[-1] == 0:
                return
            out[:, written : written + piece.shape[-1]] = piece
            if on_audio is not None:
                on_audio(out[:, written : written + piece.shape[-1]])
            written += piece.shape[-1]

        def on_wav(wav: torch.Tensor) -> None:
            wav = wav.detach().to("cpu", torch.float32)
            if not bool(torch.isfinite(wav).all()):  # before anyone hears it
                raise ModelInferenceFailed("the decoded audio contains NaN/inf", hint=RETRY_HINT)
            put(resampler.feed(wav.numpy()))

        report("decode", 0, 1)
        try:
            with self._placed(self.decoder):
                decoded = self.decoder.decode(latents, windowed=windowed, on_window=on_window, cancel=cancel,
                                              on_audio=on_wav)
        except JobCancelled:
            raise JobCancelled(*windows) from None  # say where in the decode it stopped
        record("mel", decoded["mel"][0])
        record("wav_44k", decoded["wav_44k"][0])
        put(resampler.finish())
        assert written == out.shape[-1], (written, out.shape)
        report("decode", 1, 1)
        return torch.from_numpy(out)

    @contextmanager
    def _placed(self, module: Any) -> Iterator[None]:
        """Low-VRAM mode: move ``module`` to the device while it runs, then back to the CPU."""
        if not self.offload or self.device.type == "cpu":
            yield
            return
        module.to(self.device)
        try:
            yield
        finally:
            module.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def _number(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not low <= value <= high:
        raise InvalidParams(f"{name} must be a number between {low:g} and {high:g}, got {value!r}",
                            field=name, minimum=low, maximum=high)


def _integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParams(f"{name} must be a whole number between {low} and {high}, got {value!r}",
                            field=name, minimum=low, maximum=high)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidParams(f"{name} must be one of {list(choices)}, got {value!r}", field=name,
                            choices=list(choices))
