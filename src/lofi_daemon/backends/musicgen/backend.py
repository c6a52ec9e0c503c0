"""The ``musicgen`` backend: quick previews, 5-30 s, from the official hub checkpoints.

Loading reads only what setup downloaded (a snapshot folder in the hub-cache layout,
opened as a plain local directory with ``local_files_only``), so it never touches the
network. Before anything heavy happens the weights are checked (the store's verification,
then the safetensors headers) and their size is compared with free memory, so a broken
download or a too-small GPU is a MODEL_LOAD_FAILED with a hint, not a stack trace.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...device import DevicePlan, check_memory, empty_cache, resolve
from ...errors import LofiError, ModelLoadFailed
from ...cancel import CancelToken
from ..base import Backend, Capabilities, GeneratedAudio, GenerationRequest, ParamSpec, Progress
from .checkpoint import CorruptCheckpoint, runtime_bytes, summarize_safetensors, weight_files
from .lengths import TokenGrid
from ...models.manifests import musicgen_manifest
from .variants import choose_model

if TYPE_CHECKING:
    from ...models.store import ModelStore
    from ...settings import Settings
    from .generation import MusicgenSession

log = logging.getLogger(__name__)

MIN_DURATION_SEC = 5.0
MAX_DURATION_SEC = 30.0  # 1503 decoder steps; the official models were trained on 30 s clips
SAMPLE_RATE = 32_000

PARAMETERS = (
    ParamSpec("guidance_scale", "float", 3.0, 1.0, 20.0,
              description="Classifier-free guidance: how closely to follow the prompt (1 = off)."),
    ParamSpec("temperature", "float", 1.0, 0.05, 5.0,
              description="Sampling temperature; lower is more conservative."),
    ParamSpec("top_k", "int", 250, 0, 2048, description="Sample from the k likeliest tokens (0 = off)."),
    ParamSpec("top_p", "float", 0.0, 0.0, 1.0, description="Nucleus sampling mass (0 = off)."),
)

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


class MusicgenBackend(Backend):
    name = "musicgen"
    requires = ("torch", "transformers")

    def __init__(self, settings: "Settings", store: "ModelStore") -> None:
        self._settings = settings
        self._store = store
        self.model_id = choose_model(settings.prefs.musicgen_model)
        self.manifest = musicgen_manifest(self.model_id)
        self._session: MusicgenSession | None = None

    @property
    def model_version(self) -> str:  # type: ignore[override]
        """``repo@commit``: unpinned revisions name the commit setup resolved them to."""
        return f"{self.manifest.repo_id}@{self.revision}"

    @property
    def revision(self) -> str:
        return self._store.commit(self.manifest) or self.manifest.revision

    # -- what the daemon asks before loading -------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities(
            min_duration_sec=MIN_DURATION_SEC,
            max_duration_sec=MAX_DURATION_SEC,
            sample_rate=SAMPLE_RATE,
            parameters=PARAMETERS,
            description=f"MusicGen ({self.model_id}): quick previews up to 30 s",
            # continue_from: the source's last seconds prompt the decoder (continuation.py)
            continues_audio=True,
        )

    @property
    def snapshot_dir(self) -> Path:
        return self._store.snapshot_dir(self.manifest)

    def is_installed(self) -> bool:
        return self._store.is_installed(self.manifest)

    def size_bytes(self) -> int:
        """Bytes once installed: the install record's total, else what is on disk so far."""
        return self._store.install_size_bytes(self.manifest)

    @property
    def loaded(self) -> bool:
        return self._session is not None

    # -- load / unload -----------------------------------------------------------------

    def load(self, device: DevicePlan) -> None:
        if self._session is not None:
            return
        target = resolve(device)
        setup_hint = f"Run :LofiSetup musicgen again to re-download {self.model_id}."

        # BACKEND_NOT_INSTALLED when setup never finished; MODEL_LOAD_FAILED naming the damaged
        # file when a size or (for files changed since their last check) a checksum is off.
        snapshot = self._store.verify_for_load(self.manifest)
        config = self._read_config(snapshot, setup_hint)
        grid = TokenGrid.from_config(config)
        parameters = self._count_parameters(snapshot, setup_hint)
        max_tokens = grid.tokens_for(grid.frames_for(MAX_DURATION_SEC))
        required = runtime_bytes(parameters, _DTYPE_BYTES.get(target.dtype_name, 4), config["decoder"], max_tokens)
        check_memory(required, target.device, self.model_id, choices=self._smaller_choices(target.device))

        from .generation import MusicgenSession  # torch + transformers: only now

        model, processor = self._from_pretrained(snapshot, target, setup_hint)
        self._session = MusicgenSession(
            model=model,
            processor=processor,
            grid=grid,
            audio_channels=int(config["decoder"].get("audio_channels", 1)),
            device=target,
            model_id=self.model_id,
            revision=self.revision,
        )
        log.info("musicgen: loaded %s on %s (%s), %.0fM parameters",
                 self.model_version, target.device, target.dtype_name, parameters / 1e6)

    def held_memory(self) -> dict[str, Any] | None:
        session = self._session
        if session is None:
            return None
        from ...memory import tensor_bytes

        return {"weight_bytes": tensor_bytes([session.model]), "device": session.device.device, "low_vram": False}

    def unload(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        device = session.device.device
        del session
        empty_cache(device)

    # -- generate ------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, progress: Progress, cancel: CancelToken) -> GeneratedAudio:
        if self._session is None:
            raise ModelLoadFailed("musicgen is not loaded", hint="This is a bug: the job ran before load().")
        from .generation import generate

        return generate(self._session, request, progress, cancel)

    # -- load steps ------------------------------------------------------------------------

    def _smaller_choices(self, device: str) -> list[str]:
        """What needs less memory than this load (low_vram does not apply to MusicGen)."""
        sizes = ("small", "medium", "large")
        mine = next((i for i, size in enumerate(sizes) if self.model_id.endswith(size)), 0)
        prefix = self.model_id[: -len(sizes[mine])]
        choices = [f"musicgen_model = '{prefix}{size}'" for size in sizes[:mine]]
        if device != "cpu":
            choices.append("device = 'cpu' (runs from RAM, slower)")
        choices.append("backend = 'procedural' (no model to load)")
        return choices


    def _read_config(self, snapshot: Path, hint: str) -> dict[str, Any]:
        try:
            config = json.loads((snapshot / "config.json").read_text(encoding="utf-8"))
            TokenGrid.from_config(config)
            return config
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadFailed(f"{self.model_id}: config.json is unreadable ({exc})", hint=hint) from None

    def _count_parameters(self, snapshot: Path, hint: str) -> int:
        # A second, cheaper line of defence after the store's checksums: it also catches a
        # file damaged after its last verification, before the loader meets it.
        try:
            return sum(summarize_safetensors(path).parameters for path in weight_files(snapshot))
        except CorruptCheckpoint as exc:
            raise ModelLoadFailed(f"{self.model_id}: {exc}", hint=hint) from None

    def _from_pretrained(self, snapshot: Path, target: Any, hint: str) -> tuple[Any, Any]:
        import torch
        import transformers
        from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

        transformers.utils.logging.disable_progress_bar()  # no tqdm bars in the daemon log
        try:
            model = MusicgenForConditionalGeneration.from_pretrained(
                snapshot, local_files_only=True, dtype=target.dtype)
            processor = MusicgenProcessor.from_pretrained(snapshot, local_files_only=True)
        except LofiError:
            raise
        except Exception as exc:  # corrupt tensors, unreadable tokenizer, unknown config keys
            raise ModelLoadFailed(f"{self.model_id} could not be loaded: {exc}", hint=hint) from exc
        if target.dtype != torch.float32:
            # EnCodec is ~4 % of the weights and decodes once: keep it in float32 for clean audio.
            model.audio_encoder.to(torch.float32)
        try:
            model.to(target.device)
        except RuntimeError as exc:  # the memory check is an estimate; the allocator is the truth
            empty_cache(target.device)
            raise ModelLoadFailed(f"{self.model_id} does not fit on {target.device}: {exc}",
                                  hint="Close other programs or pick a smaller model (musicgen_model).") from None
        model.eval()
        return model, processor
