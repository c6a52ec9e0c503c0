#!/usr/bin/env python
"""Stable Audio 3 Small benchmarks: one DiT step, the 8-step diffusion, SAME-S decode, peak memory.

Full-size random weights, no download: diffusers' ``StableAudio3DiTModel`` in the Small shape
(1024 wide, 20 layers, 16 heads, standard attention, 64 memory tokens) and our ``SameS`` with
its released shape (768 wide, 6 layers, 4096 samples per latent). The text encoder is not
measured (it runs once per track, on 256 tokens). For each ``--durations`` it measures

* one DiT call at the sampler's latent length (duration + 6 s headroom, even, capped at 1292),
  so 8 steps = 8 calls;
* the SAME-S decode of the whole track, one pass and in windows (58 latents + 2 of context, as the pipeline does);
* CPU seconds (process time, all threads) per second of audio, and the peak RSS of each stage.

Examples:

    nice python bench/bench_stable_audio_3.py --durations 30 120                      # CPU
    python bench/bench_stable_audio_3.py --device cuda --durations 30 120 --warmup --repeat 3

The machine line and a markdown table go to stdout; copy them into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "src"))

from bench_ace_step import machine, materialise_random, timed  # noqa: E402

from lofi_daemon.backends.stable_audio_3.sampler import latent_length  # noqa: E402
from lofi_daemon.backends.stable_audio_3.same_s import SameS, SameSConfig  # noqa: E402

SMALL_DIT = {"io_channels": 256, "embed_dim": 1024, "depth": 20, "num_heads": 16, "cond_token_dim": 768,
             "global_cond_dim": 768, "local_add_cond_dim": 257, "num_memory_tokens": 64,
             "use_differential_attention": False}


def build(device: str, dtype: torch.dtype):
    from diffusers.models.transformers.transformer_stable_audio3 import StableAudio3DiTModel

    with torch.device("meta"):
        dit = StableAudio3DiTModel(**SMALL_DIT)
        same_s = SameS(SameSConfig())
    dit = materialise_random(dit, device, dtype, seed=0).eval()
    same_s = materialise_random(same_s, device, torch.float32, seed=1).eval()  # SAME-S stays fp32
    return dit, same_s


def run(args) -> dict:
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    dit, same_s = build(args.device, dtype)
    params = sum(p.numel() for p in dit.parameters())
    rows = []
    for duration in args.durations:
        n = latent_length(duration)
        x = torch.randn(1, 256, n, device=args.device, dtype=dtype)
        context = torch.randn(1, 257, 768, device=args.device, dtype=dtype)
        seconds = torch.randn(1, 768, device=args.device, dtype=dtype)
        local = torch.zeros(1, 257, n, device=args.device, dtype=dtype)
        t = torch.full((1,), 0.5, device=args.device, dtype=dtype)

        def step():
            with torch.no_grad():
                return dit(x, t, encoder_hidden_states=context, global_hidden_states=seconds,
                           local_add_cond=local).sample

        step_s, _, step_mem = timed(step, args.device, args.repeat, args.warmup)
        latents = torch.randn(1, 256, n, device=args.device)

        def decode_once():
            with torch.no_grad():
                return same_s.decode(latents)

        def decode_windows():
            with torch.no_grad():
                return torch.cat([a for _, a in same_s.decode_windows(latents, core=58, context=2)], dim=-1)

        once_s, _, once_mem = timed(decode_once, args.device, 1, False)
        win_s, _, win_mem = timed(decode_windows, args.device, 1, False)
        audio_s = n * 4096 / 44100
        rows.append({
            "duration_s": duration, "latents": n, "audio_s_generated": round(audio_s, 2),
            "dit_step_s": round(step_s, 3), "dit_step_cpu_s": round(step_mem.cpu_s, 2),
            "dit_step_peak_gb": round(step_mem.peak_bytes / 2**30, 2),
            "diffusion_8_s": round(8 * step_s, 2),
            "decode_once_s": round(once_s, 2), "decode_once_cpu_s": round(once_mem.cpu_s, 2),
            "decode_once_extra_gb": round(once_mem.extra_bytes / 2**30, 2),
            "decode_windows_s": round(win_s, 2), "decode_windows_cpu_s": round(win_mem.cpu_s, 2),
            "decode_windows_extra_gb": round(win_mem.extra_bytes / 2**30, 2),
            "cpu_s_per_audio_s_step": round(step_mem.cpu_s / duration, 3),
            "cpu_s_per_audio_s_total": round((8 * step_mem.cpu_s + win_mem.cpu_s) / duration, 3),
        })
    return {"machine": machine(args.device), "dtype": args.dtype, "dit_params": params, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--durations", type=float, nargs="+", default=[30.0, 120.0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warmup", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args)
    print(result["machine"], f"| DiT {result['dit_params'] / 1e6:.0f} M params, {result['dtype']}")
    print("| track | latents | DiT step | 8 steps | decode (1 pass) | decode (windows) | CPU-s / audio-s | peak RSS (step) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['duration_s']:.0f} s | {r['latents']} | {r['dit_step_s']} s | {r['diffusion_8_s']} s | "
              f"{r['decode_once_s']} s (+{r['decode_once_extra_gb']} GB) | {r['decode_windows_s']} s "
              f"(+{r['decode_windows_extra_gb']} GB) | {r['cpu_s_per_audio_s_total']} | {r['dit_step_peak_gb']} GB |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
