"""The tiny Stable Audio 3 repo the fake hub serves: the committed original-layout checkpoint
(made with the official code, see make_fixtures.py) plus a tiny random T5Gemma encoder whose
width (32) is the tiny DiT's cond_token_dim, and a BPE tokenizer trained in memory."""

from __future__ import annotations

import shutil
from pathlib import Path

from sa3_fixtures import CONFIG, ORIGINAL

CORPUS = ["lofi piano rain vinyl crackle mellow beat", "TrackType: Music, VocalType: Instrumental. 90 BPM in A minor"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>")


def save_repo(root: Path) -> Path:
    import torch
    from transformers import T5GemmaConfig, T5GemmaEncoderModel
    from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ORIGINAL, root / "model.safetensors")
    shutil.copy(CONFIG, root / "model_config.json")
    tokenizer = tiny_tokenizer()
    module = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=16, vocab_size=len(tokenizer))
    config = T5GemmaConfig(encoder=T5GemmaModuleConfig(**module), decoder=T5GemmaModuleConfig(**module),
                           vocab_size=len(tokenizer))
    torch.manual_seed(0)
    encoder = T5GemmaEncoderModel(T5GemmaConfig(**{**config.to_dict(), "is_encoder_decoder": False})).eval()
    folder = root / "t5gemma-b-b-ul2"
    encoder.save_pretrained(folder, safe_serialization=True)
    config.save_pretrained(folder)  # the upstream folder's config says encoder-decoder
    tokenizer.save_pretrained(folder)
    return root


def folder_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
