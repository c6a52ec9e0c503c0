"""Make the Stable Audio 3 parity fixtures from the official code (run by hand, never by the tests).

It builds tiny random-weight models with the official Stability-AI/stable-audio-3 classes, saves
their state in the original single-file layout (`model.model.*`, `pretransform.model.*`,
`conditioner.conditioners.*`) and records inputs and outputs. Only the tensors it writes are
committed; the official code stays outside the repository.

    python -m venv /tmp/sa3off && /tmp/sa3off/bin/pip install torch==2.13.0 einops packaging safetensors numpy
    git --git-dir=<fetched stable-audio-3> archive HEAD stable_audio_3 | tar -x -C /tmp/sa3src
    PYTHONPATH=/tmp/sa3src /tmp/sa3off/bin/python tests/stable_audio_3/make_fixtures.py

Made from Stability-AI/stable-audio-3 @636f906.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import torch

# The official package imports torchaudio for resampling only; no forward pass here uses it.
sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
_transforms = types.ModuleType("torchaudio.transforms")
_transforms.Resample = None
sys.modules.setdefault("torchaudio.transforms", _transforms)
sys.modules["torchaudio"].transforms = _transforms
# The hub client is only used by the official loader, which is not called here.
_hub = types.ModuleType("huggingface_hub")
_hub.hf_hub_download = _hub.try_to_load_from_cache = _hub.scan_cache_dir = None
sys.modules.setdefault("huggingface_hub", _hub)

from safetensors.torch import save_file  # noqa: E402

from stable_audio_3.factory import create_autoencoder_from_config  # noqa: E402

HERE = Path(__file__).resolve().parent / "fixtures"

# A SAME-S shaped autoencoder, shrunk in width only: chunk 32 and stride 16 stay, since the
# chunked attention only divides evenly at those.
PATCH = 4
WIDTH = 32
LATENT = 16
DEPTH = 4
HEAD_DIM = 8
TRB = {
    "chunk_size": 32,
    "chunk_midpoint_shift": True,
    "dim_heads": HEAD_DIM,
    "ff_mult": 3,
    "dyt": True,
    "differential": True,
    "variable_stride": True,
    "mask_noise": 0.0,
}
AE_CONFIG = {
    "latent_dim": LATENT,
    "downsampling_ratio": PATCH * 16,
    "io_channels": 2,
    "encoder": {"type": "same", "config": {
        "in_channels": 2 * PATCH, "channels": WIDTH, "latent_dim": LATENT, "c_mults": [1],
        "strides": [16], "transformer_depths": [DEPTH], "conv_mapping": False, **TRB}},
    "decoder": {"type": "same", "config": {
        "out_channels": 2 * PATCH, "channels": WIDTH, "latent_dim": LATENT, "c_mults": [1],
        "strides": [16], "transformer_depths": [DEPTH], "conv_mapping": True,
        "sinusoidal_blocks": [0], **TRB}},
    "pretransform": {"type": "patched", "config": {"channels": 2, "patch_size": PATCH}},
    "bottleneck": {"type": "softnorm", "config": {"dim": LATENT, "auto_scale": True,
                                                   "noise_regularize": False}},
}


def randomize(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every parameter a non-trivial value (the official init zeroes many outputs)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "running_std" in name:
                p.fill_(1.7)
            elif name.endswith("alpha"):
                p.copy_(0.5 + torch.rand(p.shape, generator=generator))
            elif p.dim() > 1:  # N(0, 1/fan_in): activations stay O(1) through the layers
                p.copy_(torch.randn(p.shape, generator=generator) / p[0].numel() ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)


def make_autoencoder(generator: torch.Generator) -> tuple[dict, dict]:
    ae = create_autoencoder_from_config(AE_CONFIG, 44100).eval()
    randomize(ae, generator)
    samples = 2 * 32 * PATCH * 3  # six latents' worth of audio
    audio = torch.randn(1, 2, samples, generator=generator) * 0.5
    latents_in = torch.randn(1, LATENT, 10, generator=generator)
    latents_odd = torch.randn(1, LATENT, 5, generator=generator)
    with torch.no_grad():
        encoded = ae.encode(audio)
        decoded = ae.decode(latents_in)
        decoded_odd = ae.decode(latents_odd)
    state = {f"pretransform.model.{k}": v.contiguous() for k, v in ae.state_dict().items()}
    golden = {
        "ae.audio": audio, "ae.encoded": encoded,
        "ae.latents": latents_in, "ae.decoded": decoded,
        "ae.latents_odd": latents_odd, "ae.decoded_odd": decoded_odd,
    }
    return state, golden


def make_sampler(generator: torch.Generator) -> dict:
    """The official schedule, sample length and ping-pong loop, with the noise drawn up front."""
    from types import SimpleNamespace

    from stable_audio_3.inference import sampling
    from stable_audio_3.inference.distribution_shift import LogSNRShift
    from stable_audio_3.model import StableAudioModel

    golden: dict[str, torch.Tensor] = {}
    shift = LogSNRShift(rate=0, anchor_logsnr=-6.2, logsnr_end=2.0)  # the default with no override
    for steps in (1, 4, 8, 16):
        golden[f"sampler.sigmas.{steps}"] = sampling.build_schedule(
            steps=steps, dist_shift=shift, fallback_seq_len=1292, include_endpoint=True)

    # _adapt_sample_size on a stand-in holding only what it reads (the SAME-S encoder config).
    holder = SimpleNamespace(
        model=SimpleNamespace(sample_rate=44100, pretransform=SimpleNamespace(downsampling_ratio=4096)),
        model_config={"model": {"pretransform": {"config": {"encoder": {"config": {
            "chunk_size": 32, "strides": [16]}}}}}})
    durations = [5.0, 10.3, 30.0, 47.0, 115.0, 120.0]
    golden["sampler.durations"] = torch.tensor(durations, dtype=torch.float64)
    golden["sampler.sample_sizes"] = torch.tensor([StableAudioModel._adapt_sample_size(
        holder, [{"seconds_total": d}], 5292032, 6.0) for d in durations])

    x = torch.randn(1, 4, 6, generator=generator)
    noises = torch.randn(8, 1, 4, 6, generator=generator)
    drawn = iter(noises)
    real_randn_like = torch.randn_like
    torch.randn_like = lambda t: next(drawn).clone()
    try:
        out = sampling.sample_flow_pingpong(
            lambda v, t: torch.tanh(v) * t.view(-1, 1, 1) + 0.1 * v, x.clone(),
            golden["sampler.sigmas.8"], disable_tqdm=True)
    finally:
        torch.randn_like = real_randn_like
    golden.update({"sampler.x": x, "sampler.noises": noises, "sampler.out": out})
    return golden


# A Small-shaped DiT (standard attention, RMS norms, adaLN, memory tokens, inpaint input),
# shrunk in width and depth; head_dim stays 64 so the RoPE covers 32 dims as in Small.
DIT = {
    "io_channels": LATENT, "embed_dim": 64, "depth": 2, "num_heads": 1,
    "cond_token_dim": 32, "global_cond_dim": 32, "project_cond_tokens": True,
    "project_global_cond": True, "global_cond_type": "adaLN", "timestep_cond_type": "global",
    "timestep_features_type": "expo", "timestep_features_dim": 256,
    "diffusion_objective": "rf_denoiser", "num_memory_tokens": 4,
    "local_add_cond_dim": LATENT + 1, "norm_type": "rms_norm",
    "attn_kwargs": {"qk_norm": "rms"}, "ff_kwargs": {"mult": 4, "no_bias": False},
}
SECONDS = {"min_val": 0, "max_val": 384, "fourier_features_type": "expo"}


def make_dit(generator: torch.Generator) -> tuple[dict, dict]:
    from stable_audio_3.models.conditioners import NumberConditioner
    from stable_audio_3.models.dit import DiffusionTransformer

    dit = DiffusionTransformer(**DIT).eval()
    randomize(dit, generator)
    seconds = NumberConditioner(output_dim=DIT["cond_token_dim"], **SECONDS).eval()
    randomize(seconds, generator)
    padding = torch.randn(DIT["cond_token_dim"], generator=generator) * 0.3
    x = torch.randn(1, LATENT, 6, generator=generator)
    t = torch.tensor([0.7])
    text = torch.randn(1, 5, DIT["cond_token_dim"], generator=generator)
    with torch.no_grad():
        duration = seconds([12.5], device="cpu")[0]  # (1, 1, dim)
        context = torch.cat([text, duration], dim=1)
        zeros = torch.zeros(1, LATENT + 1, 6)
        velocity = dit(x, t, cross_attn_cond=context, global_embed=duration[:, 0], local_add_cond=zeros)
        mask = torch.zeros(1, 1, 6)
        mask[..., :3] = 1
        kept = torch.cat([mask, torch.randn(1, LATENT, 6, generator=generator) * mask], dim=1)
        velocity_inpaint = dit(x, t, cross_attn_cond=context, global_embed=duration[:, 0], local_add_cond=kept)
    state = {f"model.model.{k}": v for k, v in dit.state_dict().items()}
    state.update({f"conditioner.conditioners.seconds_total.{k}": v for k, v in seconds.state_dict().items()})
    state["conditioner.conditioners.prompt.padding_embedding"] = padding
    golden = {"dit.x": x, "dit.t": t, "dit.text": text, "dit.duration": duration[:, 0],
              "dit.velocity": velocity, "dit.local_cond": kept, "dit.velocity_inpaint": velocity_inpaint}
    return state, golden


def main() -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1234)
    HERE.mkdir(parents=True, exist_ok=True)
    ae_state, ae_golden = make_autoencoder(generator)
    ae_golden.update(make_sampler(generator))
    dit_state, dit_golden = make_dit(generator)
    ae_golden.update(dit_golden)
    save_file({k: v.contiguous() for k, v in {**ae_state, **dit_state}.items()},
              str(HERE / "tiny_original.safetensors"))
    save_file({k: v.contiguous() for k, v in ae_golden.items()}, str(HERE / "golden.safetensors"))
    (HERE / "tiny_model_config.json").write_text(json.dumps(
        {"sample_rate": 44100, "sample_size": 5292032, "model": {
            "io_channels": LATENT,
            "pretransform": {"type": "autoencoder", "config": AE_CONFIG},
            "conditioning": {"cond_dim": DIT["cond_token_dim"], "configs": [
                {"id": "prompt", "type": "t5gemma", "config": {
                    "model_name": "google/t5gemma-b-b-ul2", "max_length": 256, "padding_mode": "learned",
                    "repo_id": "stabilityai/stable-audio-3-small-music", "subfolder": "t5gemma-b-b-ul2"}},
                {"id": "seconds_total", "type": "number", "config": SECONDS}]},
            "diffusion": {"diffusion_objective": "rf_denoiser",
                          "cross_attention_cond_ids": ["prompt", "seconds_total"],
                          "global_cond_ids": ["seconds_total"],
                          "local_add_cond_ids": ["inpaint_mask", "inpaint_masked_input"],
                          "type": "dit", "config": DIT}}},
        indent=1) + "\n")
    for k, v in ae_golden.items():
        print(k, tuple(v.shape))


if __name__ == "__main__":
    main()
