"""Build a tiny random-weight MusicGen in the real checkpoint layout.

The three parts have the real structure (T5 text encoder, EnCodec 32 kHz codec with the
real 640-sample hop so 50 frames make a second, MusicGen decoder with 2048-entry
codebooks) but toy widths, so a 5 s track takes well under a second on a CPU. The files
are what ``facebook/musicgen-*`` ships: ``save_pretrained`` of the model and of a
``MusicgenProcessor`` (T5 tokenizer + EnCodec feature extractor).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch
from transformers import (
    EncodecConfig,
    EncodecFeatureExtractor,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)

TOKENIZER_FILES = ("special_tokens_map.json", "spiece.model", "tokenizer.json", "tokenizer_config.json")
CODEBOOK_SIZE = 2048  # as in the real checkpoints: token ids 0..2047, 2048 is the pad/start id


def tiny_config(*, stereo: bool = False, text_vocab_size: int = 200) -> MusicgenConfig:
    """``text_vocab_size`` above the tokenizer's 200 pieces adds embedding rows no prompt
    reaches: weight bytes that cost no compute (the memory tests want a model RSS can see)."""
    text = T5Config(
        vocab_size=text_vocab_size,  # the shared tiny SentencePiece tokenizer has 200 pieces
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="relu",
    )
    codec = EncodecConfig(
        sampling_rate=32_000,
        audio_channels=1,
        upsampling_ratios=[8, 5, 4, 4],  # real hop of 640 samples -> 50 frames per second
        target_bandwidths=[2.2],  # -> 4 codebooks, as in encodec_32khz
        codebook_size=CODEBOOK_SIZE,
        hidden_size=16,
        num_filters=4,
        num_lstm_layers=1,
        use_causal_conv=False,
        normalize=False,
        use_conv_shortcut=False,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE,
        hidden_size=32,
        ffn_dim=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_codebooks=8 if stereo else 4,  # stereo interleaves left/right codebooks
        audio_channels=2 if stereo else 1,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        tie_word_embeddings=False,
    )
    return MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)


def build_tiny_musicgen(out_dir: Path, tokenizer_dir: Path, *, stereo: bool = False, seed: int = 0,
                        text_vocab_size: int = 200) -> Path:
    """Write a tiny random MusicGen checkpoint into ``out_dir`` and return it."""
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(tiny_config(stereo=stereo, text_vocab_size=text_vocab_size)).eval()
    # EnCodec codebooks initialise to zeros, which would decode every token to the same
    # vector; random codebooks make the audio depend on the sampled tokens.
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
        # The random encoder's outputs are ~0.05 against unit-scale codebooks, so every frame of
        # any audio would quantize to the same smallest code. Scaled 20x they land among the
        # codebook vectors, and an audio prompt (continue_from) gives codes that depend on it.
        for parameter in model.audio_encoder.encoder.layers[-1].parameters():
            parameter.mul_(20.0)
    if text_vocab_size > 200:
        # Stored in float16, so loading (in float32) writes every row into RAM, as using a real
        # model touches all its weights; float32 rows would stay unread pages of a file mapping.
        model.text_encoder.half()
    gen = model.generation_config
    gen.decoder_start_token_id = CODEBOOK_SIZE
    gen.pad_token_id = CODEBOOK_SIZE
    gen.bos_token_id = CODEBOOK_SIZE
    gen.do_sample = True
    gen.guidance_scale = 3.0
    gen.max_length = 1500
    model.save_pretrained(out_dir)

    # The hub repos carry the processor as separate files (preprocessor_config.json plus the
    # T5 tokenizer files), not as one processor_config.json: write them the same way.
    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=32_000, padding_side="left")
    feature_extractor.processor_class = "MusicgenProcessor"
    feature_extractor.save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        shutil.copyfile(Path(tokenizer_dir) / name, out_dir / name)
    return out_dir


def install_into_store(store, manifest, source_dir: Path) -> Path:
    """Put ``source_dir``'s files where setup puts a finished download, with its record.

    Same end state as ``ModelStore.download``: files in ``snapshots/<commit>/``, a
    ``refs/<branch>`` for unpinned revisions, and a complete install record carrying the
    hub-style checksums (sha256 for LFS files, git blob ids for small text files) that
    ``verify_for_load`` checks.
    """
    from lofi_daemon.models.manifest import is_commit_hash
    from lofi_daemon.models.record import FileRecord, InstallRecord

    if is_commit_hash(manifest.revision):
        commit = manifest.revision
    else:
        commit = hashlib.sha1(manifest.repo_id.encode()).hexdigest()  # any fixed 40-hex id
        ref = store.repo_dir(manifest) / "refs" / manifest.revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit, encoding="utf-8")
    snapshot = store.snapshot_dir(manifest)
    snapshot.mkdir(parents=True, exist_ok=True)

    records = []
    for src in sorted(Path(source_dir).iterdir()):
        component = next(c.name for c in manifest.components if src.name in c.candidate_files)
        shutil.copyfile(src, snapshot / src.name)
        data = src.read_bytes()
        lfs = src.suffix in (".safetensors", ".model") or src.name == "tokenizer.json"
        records.append(FileRecord(
            path=src.name,
            component=component,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest() if lfs else None,
            git_oid=None if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
        ))
    InstallRecord(backend=manifest.backend, repo_id=manifest.repo_id, revision=manifest.revision,
                  commit=commit, files=records, complete=True).save(store.record_path(manifest))
    return snapshot


def tiny_musicgen_hub_files(out_dir: Path) -> dict[str, bytes]:
    """The tiny checkpoint as the files of a hub repo (for the fake hub), with the fixture tokenizer."""
    from repo_paths import acestep_fixture_dir

    tokenizer = acestep_fixture_dir() / "checkpoint" / "umt5-base"
    out = build_tiny_musicgen(out_dir, tokenizer)
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
