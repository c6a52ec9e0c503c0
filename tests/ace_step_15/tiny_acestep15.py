"""Build a tiny random-weight ACE-Step 1.5, in the diffusers layout and in the original one.

The components are the real classes (diffusers' ``AceStepTransformer1DModel``,
``AceStepConditionEncoder``, ``AutoencoderOobleck``, transformers' ``Qwen3Model``) at the
sizes diffusers' own tests use. The tokenizer is a byte-level BPE trained in memory on a few
sentences (the real one is Qwen3's; the hub is out of reach here), wrapped as a
``Qwen2TokenizerFast`` with ``<|endoftext|>`` as pad and eos, which the pipeline's lyric
template appends.

Two VAEs: ``rate="real"`` has the real 48 kHz rate and hop (1920 samples = 25 latents/s) so
files have real lengths; ``rate="test"`` is diffusers' test-sized VAE (4 Hz "audio", hop 2),
for tests where the rate does not matter (the converter, tiling).

``save_original`` writes what ``ACE-Step/Ace-Step1.5`` ships: ``acestep-v15-turbo/``
(``config.json`` in the original key names, one ``model.safetensors`` with the DiT under
``decoder.`` and the condition encoder under ``encoder.``, the original Sequential names
``proj_in.1`` / ``proj_out.1``, audio-tokenizer weights we must skip, and
``silence_latent.pt`` stored [1, C, T]), ``vae/`` and ``Qwen3-Embedding-0.6B/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

ACOUSTIC_DIM = 8
TEXT_DIM = 32
CORPUS = [
    "lo-fi hip hop, mellow piano, vinyl crackle, 80 bpm, relaxed",
    "# Languages\nunknown\n\n# Lyric\n[Instrumental]",
    "# Instruction\nFill the audio semantic mask based on the given conditions:\n\n# Caption\n",
    "- bpm: N/A\n- timesignature: N/A\n- keyscale: N/A\n- duration: 30 seconds\n",
    "ambient rain, soft synth pads, slow tempo, warm tape hiss",
]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(CORPUS, trainer=trainer)
    return Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                              unk_token=None, bos_token=None)


def tiny_vae(rate: str = "real"):
    from diffusers import AutoencoderOobleck

    if rate == "real":
        # encoder_hidden_size = 2 x the latent channels (mean and scale), as in the real VAE
        # (128 -> 64): continuing a track encodes its tail into the latents the DiT reads.
        return AutoencoderOobleck(encoder_hidden_size=2 * ACOUSTIC_DIM, downsampling_ratios=[2, 4, 4, 6, 10],
                                  channel_multiples=[1, 2, 2, 2, 2], decoder_channels=4,
                                  decoder_input_channels=ACOUSTIC_DIM, audio_channels=2, sampling_rate=48_000)
    return AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[1, 2], decoder_channels=3,
                              decoder_input_channels=ACOUSTIC_DIM, audio_channels=2, channel_multiples=[2, 4],
                              sampling_rate=4)


def tiny_pipeline(*, rate: str = "real", turbo: bool = True, seed: int = 0):
    """A random ACE-Step 1.5 pipeline; the same ``seed`` gives the same weights."""
    from diffusers import AceStepConditionEncoder, AceStepPipeline, AceStepTransformer1DModel
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    transformer = AceStepTransformer1DModel(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, in_channels=3 * ACOUSTIC_DIM, audio_acoustic_hidden_dim=ACOUSTIC_DIM, patch_size=2,
        rope_theta=10000.0, sliding_window=16, is_turbo=turbo, model_version="turbo" if turbo else "base")
    condition_encoder = AceStepConditionEncoder(
        hidden_size=32, intermediate_size=64, text_hidden_dim=TEXT_DIM, timbre_hidden_dim=ACOUSTIC_DIM,
        num_lyric_encoder_hidden_layers=2, num_timbre_encoder_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, rope_theta=10000.0, sliding_window=16)
    with torch.no_grad():  # the real buffer is encoded silence, not zeros: make the layout matter
        condition_encoder.silence_latent.normal_(0.0, 0.5)
    text_encoder = Qwen3Model(Qwen3Config(
        hidden_size=TEXT_DIM, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, vocab_size=len(tokenizer), max_position_embeddings=256))
    return AceStepPipeline(
        vae=tiny_vae(rate), text_encoder=text_encoder.eval(), tokenizer=tokenizer,
        transformer=transformer.eval(), condition_encoder=condition_encoder.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0))


def save_diffusers(pipe, folder: Path) -> Path:
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


#: The original config.json (``AceStepConfig`` of the trust-remote-code model) for the tiny sizes.
def original_config(pipe) -> dict:
    t, c = pipe.transformer.config, pipe.condition_encoder.config
    return {
        "architectures": ["AceStepConditionGenerationModel"],
        "model_type": "acestep",
        "hidden_size": t.hidden_size, "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers, "num_attention_heads": t.num_attention_heads,
        "num_key_value_heads": t.num_key_value_heads, "head_dim": t.head_dim, "in_channels": t.in_channels,
        "audio_acoustic_hidden_dim": t.audio_acoustic_hidden_dim, "patch_size": t.patch_size,
        "rope_theta": t.rope_theta, "attention_bias": t.attention_bias, "attention_dropout": t.attention_dropout,
        "rms_norm_eps": t.rms_norm_eps, "sliding_window": t.sliding_window, "use_sliding_window": True,
        "layer_types": list(pipe.transformer.layer_types), "max_position_embeddings": 32768,
        "text_hidden_dim": c.text_hidden_dim, "timbre_hidden_dim": c.timbre_hidden_dim,
        "num_lyric_encoder_hidden_layers": c.num_lyric_encoder_hidden_layers,
        "num_timbre_encoder_hidden_layers": c.num_timbre_encoder_hidden_layers,
        "is_turbo": bool(t.is_turbo), "model_version": t.model_version,
        "fsq_dim": 2048, "pool_window_size": 5,
    }


def save_original(pipe, root: Path, dit_folder: str = "acestep-v15-turbo") -> Path:
    """The upstream checkpoint layout, from the same weights as ``pipe``."""
    from safetensors.torch import save_file

    dit = root / dit_folder
    dit.mkdir(parents=True, exist_ok=True)
    state: dict[str, torch.Tensor] = {}
    for key, value in pipe.transformer.state_dict().items():
        key = key.replace("proj_in_conv.", "proj_in.1.").replace("proj_out_conv.", "proj_out.1.")
        state["decoder." + key] = value.contiguous()
    for key, value in pipe.condition_encoder.state_dict().items():
        if key == "silence_latent":
            continue  # ships as its own file
        if key == "null_condition_emb":
            state[key] = value.contiguous()  # top-level in the original model
        else:
            state["encoder." + key] = value.contiguous()
    # The 5 Hz audio tokenizer / detokenizer live in the same file; text2music never reads them.
    state["tokenizer.quantizer.project_in.weight"] = torch.randn(4, ACOUSTIC_DIM)
    state["detokenizer.embed_tokens.weight"] = torch.randn(ACOUSTIC_DIM, 4)
    save_file(state, str(dit / "model.safetensors"))
    (dit / "config.json").write_text(json.dumps(original_config(pipe), indent=2), encoding="utf-8")
    silence = pipe.condition_encoder.silence_latent.detach().transpose(1, 2).contiguous().clone()  # [1, C, T]
    torch.save(silence, dit / "silence_latent.pt")
    pipe.vae.save_pretrained(root / "vae", safe_serialization=True)
    pipe.text_encoder.save_pretrained(root / "Qwen3-Embedding-0.6B", safe_serialization=True)
    pipe.tokenizer.save_pretrained(root / "Qwen3-Embedding-0.6B")
    return root


def folder_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative path, for a fake hub repo."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
