#!/usr/bin/env python
"""ACE-Step 1.5 benchmarks: one DiT call, VAE decode per second of audio, peak memory.

Full-size random weights, no download: diffusers' ``AceStepTransformer1DModel`` with its
default (2B turbo) config, built on the meta device and materialised in the target dtype,
and the real ``AutoencoderOobleck`` config (48 kHz, hop 1920, 64 latent channels). Measures

* one transformer call (batch 1 = a turbo step; ``--guided`` adds batch 2 = a base-model
  APG step with cond + null batched) at each ``--durations``,
* the VAE decode of ``--decode-seconds`` of audio, one-shot (one tile, as our decode does
  up to 20 s) -> seconds of decode per second of audio,
* peak memory of each stage (CUDA allocator peak, or the process RSS sampled every 2 ms),

then estimates a whole 8-step turbo generation (8 calls + decode) per duration.

Examples:

    python bench/bench_ace_step_15.py --durations 30 120 --decode-seconds 10          # CPU
    python bench/bench_ace_step_15.py --device cuda --dtype bfloat16 --durations 30 120 240 600 \\
        --decode-seconds 20 --guided --warmup --repeat 3 --json bench-ace15-gpu.json

The machine line and a markdown table go to stdout; copy them into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "src"))

from bench_ace_step import machine, materialise_random, timed  # noqa: E402

LATENTS_PER_SEC = 25
TURBO_STEPS = 8
CONDITION_TOKENS = 160  # SFT text template (~100 tokens) + lyric header with "[Instrumental]" + timbre
REAL_VAE = dict(encoder_hidden_size=128, downsampling_ratios=[2, 4, 4, 6, 10], channel_multiples=[1, 2, 4, 8, 16],
                decoder_channels=128, decoder_input_channels=64, audio_channels=2, sampling_rate=48_000)


def fullsize_transformer(device: str, dtype: torch.dtype):
    from diffusers import AceStepTransformer1DModel

    with torch.device("meta"):
        model = AceStepTransformer1DModel(is_turbo=True, model_version="turbo")  # the defaults are the 2B config
    return materialise_random(model, device, dtype, seed=0)


def transformer_call(model, latents: int, batch: int, device: str, dtype: torch.dtype):
    g = torch.Generator(device=device).manual_seed(1)
    acoustic = model.config.audio_acoustic_hidden_dim
    x = torch.randn(batch, latents, acoustic, generator=g, device=device).to(dtype)
    context = torch.randn(batch, latents, model.config.in_channels - acoustic, generator=g, device=device).to(dtype)
    cond = torch.randn(batch, CONDITION_TOKENS, model.config.hidden_size, generator=g, device=device).to(dtype)
    t = torch.full((batch,), 0.75, device=device, dtype=dtype)

    def call():
        with torch.inference_mode():
            return model(hidden_states=x, timestep=t, timestep_r=t, encoder_hidden_states=cond,
                         context_latents=context, return_dict=False)[0]

    return call


def fullsize_vae(device: str, dtype: torch.dtype):
    from diffusers import AutoencoderOobleck

    torch.manual_seed(0)
    return AutoencoderOobleck(**REAL_VAE).to(device=device, dtype=dtype).eval()


def run(args) -> dict:
    device, dtype = args.device, getattr(torch, args.dtype)
    torch.set_num_threads(args.threads) if args.threads else None
    rows: list[dict] = []
    built = time.perf_counter()
    model = fullsize_transformer(device, dtype) if args.durations else None
    params = sum(p.numel() for p in model.parameters()) if model is not None else 0
    result = {"machine": machine(device), "dtype": args.dtype, "transformer_params": params,
              "build_s": round(time.perf_counter() - built, 1), "rows": rows}
    print(f"# {result['machine']}; transformer {params / 1e9:.3f} B parameters in {args.dtype}", flush=True)
    for seconds in args.durations:
        latents = math.ceil(seconds * LATENTS_PER_SEC)
        for batch in (1, 2) if args.guided else (1,):
            wall, out, memory = timed(transformer_call(model, latents, batch, device, dtype), device, args.repeat,
                                      warmup=args.warmup)
            assert bool(torch.isfinite(out).all()), "the random DiT produced NaN/inf"
            rows.append({"stage": f"transformer call, batch {batch}", "seconds_audio": seconds, "latents": latents,
                         "wall_s": round(wall, 2), "cpu_s": round(memory.cpu_s, 1),
                         "peak_gb": round(memory.peak_bytes / 2**30, 2)})
            print(rows[-1], flush=True)
    del model

    if args.decode_seconds <= 0:  # transformer only
        result["estimates"] = []
        return result
    vae = fullsize_vae(device, getattr(torch, args.vae_dtype))
    latents = math.ceil(args.decode_seconds * LATENTS_PER_SEC)
    z = torch.randn(1, 64, latents, generator=torch.Generator(device=device).manual_seed(2), device=device)
    z = z.to(vae.dtype)

    def decode():
        with torch.inference_mode():
            return vae.decoder(z)

    wall, audio, memory = timed(decode, device, args.repeat, warmup=False)
    assert audio.shape[-1] == latents * 1920
    rows.append({"stage": f"VAE decode ({args.vae_dtype}, one tile)", "seconds_audio": args.decode_seconds,
                 "latents": latents, "wall_s": round(wall, 2), "cpu_s": round(memory.cpu_s, 1),
                 "peak_gb": round(memory.peak_bytes / 2**30, 2), "extra_gb": round(memory.extra_bytes / 2**30, 2),
                 "per_audio_second_s": round(wall / args.decode_seconds, 3)})
    print(rows[-1], flush=True)
    result["estimates"] = estimates(rows)
    return result


def estimates(rows: list[dict]) -> list[dict]:
    """Whole 8-step turbo generations: 8 batch-1 calls + decode scaled linearly with length."""
    decode = next(r for r in rows if r["stage"].startswith("VAE"))
    out = []
    for r in rows:
        if r["stage"] == "transformer call, batch 1":
            s = r["seconds_audio"]
            total = TURBO_STEPS * r["wall_s"] + decode["per_audio_second_s"] * s
            out.append({"seconds_audio": s, "diffusion_s": round(TURBO_STEPS * r["wall_s"], 1),
                        "decode_s": round(decode["per_audio_second_s"] * s, 1), "rtf": round(s / total, 3)})
    return out


def markdown(result: dict) -> str:
    lines = [f"Machine: {result['machine']}; transformer {result['transformer_params'] / 1e9:.3f} B parameters "
             f"in {result['dtype']} (built in {result['build_s']} s).", "",
             "| stage | audio | latents | wall | CPU-s | peak RSS / allocated |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['stage']} | {r['seconds_audio']} s | {r['latents']} | {r['wall_s']} s | {r['cpu_s']} "
                     f"| {r['peak_gb']} GB |")
    lines += ["", "| audio | 8 DiT calls | decode | RTF |", "|---|---|---|---|"]
    for e in result["estimates"]:
        lines.append(f"| {e['seconds_audio']} s | {e['diffusion_s']} s | {e['decode_s']} s | {e['rtf']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--vae-dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--durations", type=float, nargs="*", default=[30.0, 120.0],
                   help="audio seconds per transformer call; none: only the VAE decode")
    p.add_argument("--decode-seconds", type=float, default=10.0, help="0: skip the VAE decode")
    p.add_argument("--guided", action="store_true", help="also time batch-2 (base-model APG) calls")
    p.add_argument("--warmup", action="store_true", help="one untimed call first (kernel/weight preparation)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    result = run(args)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
