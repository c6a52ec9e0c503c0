"""The prompt encoder: the UMT5 encoder and tokenizer from ``umt5-base/`` (transformers).

``encode(prompt)`` gives UMT5's ``last_hidden_state`` and the attention mask, tokenized
like the official pipeline (padding, truncation to 256 tokens, ``</s>`` appended).
``encode(prompt, erg=True)`` is the ERG-tag "null" text: the same pass with the query
projections of encoder blocks 8 and 9 scaled by 0.01 (the official code installs forward
hooks for it; we do the same, for the duration of one call).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ...errors import ModelLoadFailed
from .checkpoint import SETUP_HINT

log = logging.getLogger(__name__)

MAX_TOKENS = 256
ERG_TAG_BLOCKS = (8, 9)
ERG_SCALE = 0.01


@dataclass
class TextStates:
    hidden_states: torch.Tensor  # [1, L, d_model]
    attention_mask: torch.Tensor  # [1, L] int64
    input_ids: torch.Tensor  # [1, L] int64


class TextEncoder:
    def __init__(self, model: torch.nn.Module, tokenizer: object) -> None:
        self.model = model
        self.tokenizer = tokenizer

    @classmethod
    def from_dir(cls, folder: Path, *, device: str | torch.device, dtype: torch.dtype) -> "TextEncoder":
        import transformers
        from transformers import AutoTokenizer, UMT5EncoderModel

        transformers.utils.logging.disable_progress_bar()  # no tqdm bars in the daemon log
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = UMT5EncoderModel.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/safetensors errors
            raise ModelLoadFailed(f"cannot load the text encoder from {folder}: {exc}", hint=SETUP_HINT,
                                  path=str(folder)) from exc
        _check_prefix_space(tokenizer, folder)
        model = model.to(device).eval().requires_grad_(False)
        return cls(model, tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(
            [prompt], return_tensors="pt", padding=True, truncation=True, max_length=MAX_TOKENS
        )
        return batch["input_ids"], batch["attention_mask"]

    @torch.no_grad()
    def encode(self, prompt: str, *, erg: bool = False) -> TextStates:
        input_ids, attention_mask = self.tokenize(prompt)
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        with self._erg_scaled_queries(erg):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return TextStates(hidden_states=hidden, attention_mask=attention_mask, input_ids=input_ids)

    @contextmanager
    def _erg_scaled_queries(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return
        blocks = self.model.encoder.block
        if len(blocks) <= max(ERG_TAG_BLOCKS):
            raise IndexError(f"ERG-tag needs UMT5 blocks {ERG_TAG_BLOCKS}; this model has {len(blocks)}")

        def scale_output(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            return output * ERG_SCALE

        handles = [blocks[i].layer[0].SelfAttention.q.register_forward_hook(scale_output) for i in ERG_TAG_BLOCKS]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _check_prefix_space(tokenizer: object, folder: Path) -> None:
    """Pitfall: a T5 *fast* tokenizer converted from ``spiece.model`` without
    ``add_prefix_space`` drops the first word's "▁" and its ids differ from the
    SentencePiece ones the model was trained with. Fail loudly instead of generating
    from wrong ids.
    """
    try:
        pieces = tokenizer.convert_ids_to_tokens(tokenizer("music")["input_ids"])  # type: ignore[attr-defined]
    except Exception:  # a tokenizer without these methods is checked by the parity tests
        return
    if pieces and not str(pieces[0]).startswith("\u2581"):
        raise ModelLoadFailed(
            f"the tokenizer in {folder} does not add the leading '\u2581' to the first word",
            hint=SETUP_HINT,
            path=str(folder),
        )
