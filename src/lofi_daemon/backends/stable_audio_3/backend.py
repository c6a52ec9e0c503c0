"""The ``stable_audio_3`` backend: Stable Audio 3 Small ("small-music") on our parts.

Setup downloads the original checkpoint and the T5Gemma folder (``models/manifests.py``); load
converts in memory (``convert.py``) and keeps everything in fp32 on the CPU; each track runs
``pipeline.generate`` and is resampled 44.1 -> 48 kHz by the track writer. The text encoder runs
once per track and is freed after it (the DiT and SAME-S stay).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import InvalidParams, LofiError, ModelInferenceFailed, ModelLoadFailed
from ...models.manifests import STABLE_AUDIO_3_LICENCE, STABLE_AUDIO_3_TEXT_ENCODER_DIR, stable_audio_3_manifest
from ..base import Backend, Capabilities, GeneratedAudio, GenerationRequest, ParamSpec, Progress
from .prompt import KEYS, MAX_BPM, MIN_BPM, compose

if TYPE_CHECKING:
    from ...cancel import CancelToken
    from ...device import DevicePlan
    from ...models.manifest import ModelManifest
    from ...models.store import ModelStore
    from ...settings import Settings

log = logging.getLogger(__name__)

MIN_DURATION_SEC = 5.0
MAX_DURATION_SEC = 120.0  # sample_size 5,292,032 at 44.1 kHz (checked against the config at load)
MAX_TEXT_TOKENS = 256
#: Beyond the fp32 weights: the 120 s DiT activations (1,356 tokens x 1024) and one SAME-S
#: decode group, with allocator slack (an estimate, not measured at full size).
WORKING_BYTES = 1 << 30
SETUP_HINT = "Run :LofiSetup stable-audio-3 again."
RETRY_HINT = "Retry with another seed."

PARAMETERS = (
    ParamSpec("inference_steps", "int", 8, 1, 16,
              description="Ping-pong steps (8 is what the model was post-trained for; 1 is fastest)."),
    ParamSpec("bpm", "int", 0, 0, MAX_BPM,
              description=f"Tempo written into the prompt as 'N BPM', {MIN_BPM}-{MAX_BPM} (0 = unset)."),
    ParamSpec("key", "choice", "", choices=KEYS, description="Key written into the prompt ('' = unset)."),
    ParamSpec("instrumental", "bool", True,
              description="Prefix 'TrackType: Music, VocalType: Instrumental.' as the prompting guide advises."),
)
# ``continue_from`` (generate's own parameter, for backends that continue audio): the new track
# starts with that track's last seconds (half the new duration, at most 30 s) and goes on.
MAX_KEPT_SECONDS = 30.0
LEAD_IN_FRAMES = 12_000  # 0.25 s at 48 kHz: the flow join's move from the source into the kept head


class StableAudio3Backend(Backend):
    name = "stable_audio_3"
    requires = ("torch", "transformers", "diffusers", "safetensors")
    licence = STABLE_AUDIO_3_LICENCE

    def __init__(self, settings: "Settings", store: "ModelStore") -> None:
        self._settings = settings
        self._store = store
        self._parts: Any = None
        self._text: Any = None  # (tokenizer, encoder), only between load and the first encode
        self._text_folder: Any = None

    @property
    def manifest(self) -> "ModelManifest":  # type: ignore[override]
        return stable_audio_3_manifest()

    @property
    def model_version(self) -> str:  # type: ignore[override]
        manifest = self.manifest
        return f"{manifest.repo_id}@{self._store.commit(manifest) or manifest.revision}"

    def capabilities(self) -> Capabilities:
        return Capabilities(min_duration_sec=MIN_DURATION_SEC, max_duration_sec=MAX_DURATION_SEC,
                            sample_rate=44_100, parameters=PARAMETERS, continues_audio=True,
                            decodes_in_windows=True,
                            description=f"Stable Audio 3 Small: 8-step text-to-music. Licence: {self.licence}.")

    def is_installed(self) -> bool:
        return self._store.is_installed(self.manifest)

    def size_bytes(self) -> int:
        return self._store.install_size_bytes(self.manifest)

    @property
    def loaded(self) -> bool:
        return self._parts is not None

    # -- load / unload -----------------------------------------------------------------------

    def load(self, device: "DevicePlan") -> None:
        if self._parts is not None:
            return
        snapshot = self._store.verify_for_load(self.manifest)  # NOT_INSTALLED / MODEL_LOAD_FAILED + hint
        from ...device import check_memory

        weights = sum(p.stat().st_size for p in snapshot.rglob("*.safetensors"))
        check_memory(weights + WORKING_BYTES, "cpu", "Stable Audio 3 Small (fp32)")
        try:
            from safetensors.torch import load_file

            from .convert import Checkpoint, ConversionError
            from .pipeline import Parts

            config = json.loads((snapshot / "model_config.json").read_text())
            ck = Checkpoint(load_file(str(snapshot / "model.safetensors")), config)
            ck.check_complete()
            parts = Parts(dit=ck.build_dit(), duration_embedder=ck.build_duration_embedder(),
                          same_s=ck.build_same_s(), max_samples=int(config.get("sample_size", 5_292_032)))
            self._text_folder = snapshot / STABLE_AUDIO_3_TEXT_ENCODER_DIR
            self._text = _load_text_encoder(self._text_folder)  # proves it loads; freed after the first use
        except LofiError:
            raise
        except ConversionError as exc:
            raise ModelLoadFailed(f"the Stable Audio 3 checkpoint is not the layout this backend knows: {exc}",
                                  hint=SETUP_HINT) from None
        except Exception as exc:  # noqa: BLE001 - every file read here is untrusted
            raise ModelLoadFailed(f"Stable Audio 3 could not be loaded from {snapshot}: {exc}",
                                  hint=SETUP_HINT, path=str(snapshot)) from None
        self._parts = parts
        log.info("stable_audio_3: loaded %s", self.model_version)

    def unload(self) -> None:
        self._parts, self._text, self._text_folder = None, None, None

    # -- generate ------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, progress: Progress, cancel: "CancelToken") -> GeneratedAudio:
        if self._parts is None:
            raise ModelLoadFailed("stable_audio_3 is not loaded", hint="This is a bug: the job ran before load().")
        import torch

        from .pipeline import SAMPLE_RATE, generate
        from .sampler import latent_length

        params = self.capabilities().resolve_params(dict(request.params), backend=self.name)
        source = request.continue_from.path if request.continue_from is not None else None
        if 0 < params["bpm"] < MIN_BPM:
            raise InvalidParams(f"parameter 'bpm' must be 0 (unset) or {MIN_BPM}-{MAX_BPM}, got {params['bpm']}",
                                field="bpm")
        steps = params["inference_steps"]
        text = compose(request.prompt, bpm=params["bpm"], key=params["key"], instrumental=params["instrumental"])
        # Relative costs from bench/bench_stable_audio_3.py on a 2-core CPU (docs/benchmarks.md):
        # a step is ~0.016 CPU-s per latent (headroom included), the decode ~0.72 per audio second.
        latents = latent_length(float(request.duration_sec))
        progress.plan((("text", 2.0), ("diffusion", 0.016 * latents * steps),
                       ("decode", 0.72 * float(request.duration_sec))))

        def encode_text():
            # The encoder (~1.1 GB fp32) runs once per track, so it is freed right after and read
            # again (from the page cache, about a second) for the next track.
            tokenizer, encoder = self._text or _load_text_encoder(self._text_folder)
            self._text = None
            tokens = tokenizer([text], padding="max_length", max_length=MAX_TEXT_TOKENS, truncation=True,
                               return_tensors="pt")
            with torch.no_grad():
                hidden = encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
            progress.update("text", 1, 1)
            return hidden.float(), tokens.attention_mask.bool()

        try:
            keep = self._kept_tail(source, float(request.duration_sec)) if source else None
            windows = request.windows  # play while decoding: each decoded window as it is done
            track = generate(self._parts, encode_text, duration=float(request.duration_sec), seed=int(request.seed),
                             steps=steps, cancel=cancel, report=progress.update, keep=keep,
                             on_window=None if windows is None else
                             (lambda audio: windows.window(audio.numpy(), SAMPLE_RATE)))
            if not bool(torch.isfinite(track.audio).all()):
                raise ModelInferenceFailed("the decoded audio contains NaN/inf", hint=RETRY_HINT)
        except LofiError:
            raise
        except (RuntimeError, ValueError) as exc:
            raise ModelInferenceFailed(f"Stable Audio 3 failed while generating: {exc}", hint=RETRY_HINT) from exc
        continuation: dict[str, Any] = {}
        if keep is not None:
            # where the new part begins in the 48 kHz file: the radio's flow joins there
            join = round(int(keep.shape[-1]) * self._parts.same_s.samples_per_latent * 48_000 / SAMPLE_RATE)
            # The kept head is SAME-S's reconstruction of the source, not its samples, and the
            # source's file ends in the writer's 5 ms fade: flow moves into our head over the
            # source's last frames (playback/stream.py) rather than splice onto another waveform.
            continuation = {"continues": request.continue_from.track_id,  # type: ignore[union-attr]
                            "join_frame": join, "lead_in_frames": min(LEAD_IN_FRAMES, join)}
        # The track writer resamples 44.1 -> 48 kHz (soxr VHQ), as for every backend.
        return GeneratedAudio(samples=track.audio.numpy(), sample_rate=SAMPLE_RATE, metadata={
            "device": "cpu", "dtype": "float32", "threads": torch.get_num_threads(),
            "model_version": self.model_version, "prompt_sent": text,
            "latent_length": int(track.latents.shape[-1]), "steps": steps,
            "kept_latents": 0 if keep is None else int(keep.shape[-1]),
            **continuation,
        })

    def _kept_tail(self, path: str, duration: float) -> "Any":
        """The last seconds of a finished track as SAME-S latents (an even count, whole latents)."""
        import torch

        from ...audio import read, resample
        from .pipeline import SAMPLE_RATE

        try:
            audio, rate = read(Path(path))
        except Exception as exc:  # noqa: BLE001 - a library file is untrusted too
            raise InvalidParams(f"cannot read the track to continue ({path}): {exc}", field="continue_from") from None
        if rate != SAMPLE_RATE:
            audio = resample(audio, rate, SAMPLE_RATE)
        if audio.shape[0] == 1:
            audio = audio.repeat(2, axis=0)
        same_s = self._parts.same_s
        step = same_s.samples_per_latent * same_s.config.latents_per_block
        keep_samples = min(int(min(duration / 2, MAX_KEPT_SECONDS) * SAMPLE_RATE), audio.shape[-1]) // step * step
        if keep_samples == 0:
            raise InvalidParams("the track to continue is too short", field="continue_from")
        tail = torch.from_numpy(audio[:2, -keep_samples:].copy()).unsqueeze(0)
        with torch.no_grad():
            return same_s.encode(tail)


def _load_text_encoder(folder):
    from transformers import AutoConfig, AutoTokenizer, T5GemmaEncoderModel

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    config.is_encoder_decoder = False  # T5GemmaEncoderModel refuses an encoder-decoder config
    encoder = T5GemmaEncoderModel.from_pretrained(str(folder), config=config, local_files_only=True).eval()
    return tokenizer, encoder
