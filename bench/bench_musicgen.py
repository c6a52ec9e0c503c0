"""MusicGen speed at the real checkpoint shapes, with random weights (nothing downloaded).

    python bench/bench_musicgen.py                      # musicgen-small, CPU, 3 s of audio
    python bench/bench_musicgen.py --device cuda --seconds 30 --runs 3
    python bench/bench_musicgen.py --model medium --device cuda --dtype float16

The model is built from the official configuration values (T5-base text encoder, EnCodec
32 kHz, the MusicGen decoder of the chosen size) with random weights. Random weights cost
exactly what trained ones cost per step: the token count is fixed by the duration, and
sampling over 2048 logits does not depend on their values. Generation runs through the
backend's own ``generation.generate`` (hooks, cancel checks, NaN checks, trimming included).

Reports decoder steps per second, the real-time factor (seconds of compute per second of
audio; < 1 is faster than real time), each phase's cost in decoder-step units (what the
progress plan in generation.py assumes), how far the reported percent strays from the
true fraction of wall time, and peak memory. Prints JSON; docs/benchmarks.md (MusicGen section)
records results per machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

# (hidden size, layers, attention heads) of the official decoders; ffn is 4 x hidden.
DECODERS = {"small": (1024, 24, 16), "medium": (1536, 48, 24), "large": (2048, 48, 32)}


def real_config(size: str, stereo: bool):
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    hidden, layers, heads = DECODERS[size]
    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                    feed_forward_proj="relu")  # t5-base
    codec = EncodecConfig(sampling_rate=32_000, upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2],
                          num_filters=64, codebook_size=2048, use_causal_conv=False, normalize=False,
                          use_conv_shortcut=False)  # facebook/encodec_32khz
    decoder = MusicgenDecoderConfig(hidden_size=hidden, ffn_dim=4 * hidden, num_hidden_layers=layers,
                                    num_attention_heads=heads, num_codebooks=8 if stereo else 4,
                                    audio_channels=2 if stereo else 1, tie_word_embeddings=False)
    return MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)


def tokenizer_dir() -> Path:
    shared = Path(os.environ.get("LOFI_SHARED_DIR") or REPO.parent / "shared")
    path = shared / "fixtures" / "acestep-v1-tiny" / "checkpoint" / "umt5-base"
    if not (path / "tokenizer.json").is_file():
        sys.exit(f"needs the tiny T5 tokenizer at {path} (set LOFI_SHARED_DIR)")
    return path


class TimedProgress:
    def __init__(self) -> None:
        self.plan_weights: list[tuple[str, float]] = []
        self.events: list[tuple[float, str, int, int]] = []

    def plan(self, phases) -> None:
        self.plan_weights = [(n, float(w)) for n, w in phases]

    def update(self, phase: str, current: int, total: int) -> None:
        self.events.append((time.perf_counter(), phase, current, total))

    def percent(self, phase: str, current: int, total: int) -> float:
        names = [n for n, _ in self.plan_weights]
        weights = dict(self.plan_weights)
        before = sum(w for n, w in self.plan_weights[: names.index(phase)])
        return 100.0 * (before + weights[phase] * current / total) / sum(weights.values())


def build_session(args, device_plan):
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor
    from transformers import T5TokenizerFast

    from lofi_daemon.backends.musicgen.generation import MusicgenSession
    from lofi_daemon.backends.musicgen.lengths import TokenGrid
    from lofi_daemon.device import resolve

    target = resolve(device_plan)
    config = real_config(args.model, args.stereo)
    torch.manual_seed(0)
    started = time.perf_counter()
    model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():  # EnCodec codebooks start at zero; give them values like trained ones
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
    model.generation_config.decoder_start_token_id = 2048
    model.generation_config.pad_token_id = 2048
    model.to(dtype=target.dtype)
    if target.dtype != torch.float32:
        model.audio_encoder.to(torch.float32)  # as MusicgenBackend.load does
    model.to(target.device)
    build_sec = time.perf_counter() - started
    processor = MusicgenProcessor(
        feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=32_000, padding_side="left"),
        tokenizer=T5TokenizerFast.from_pretrained(tokenizer_dir()),
    )
    grid = TokenGrid.from_config(config.to_dict())
    session = MusicgenSession(model=model, processor=processor, grid=grid,
                              audio_channels=config.decoder.audio_channels, device=target,
                              model_id=f"facebook/musicgen-{'stereo-' if args.stereo else ''}{args.model}",
                              revision="random-weights")
    return session, sum(p.numel() for p in model.parameters()), build_sec


def one_run(session, seconds: float, seed: int) -> dict:
    from lofi_daemon.cancel import CancelToken
    from lofi_daemon.backends.base import GenerationRequest
    from lofi_daemon.backends.musicgen.generation import generate

    progress = TimedProgress()
    request = GenerationRequest("lofi hip hop beat, mellow piano, vinyl crackle", seconds, seed,
                                {"guidance_scale": 3.0, "temperature": 1.0, "top_k": 250, "top_p": 0.0})
    if session.device.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    audio = generate(session, request, progress, CancelToken())
    end = time.perf_counter()

    ev = progress.events
    text_end = next(t for t, p, c, n in ev if p == "text" and c == 1)
    tokens = [(t, c) for t, p, c, n in ev if p == "tokens"]
    n_tokens = tokens[-1][1]
    steady_step = (tokens[-1][0] - tokens[0][0]) / (n_tokens - 1)
    decode_sec = end - tokens[-1][0]
    frames = audio.metadata["frames"]
    wall = end - start
    # How far the percent the job layer would show strays from the true share of wall time.
    drift = max(abs(progress.percent(p, c, n) - 100.0 * (t - start) / wall) for t, p, c, n in ev)
    return {
        "audio_sec": seconds,
        "tokens": n_tokens,
        "generate_sec": round(wall, 3),
        "rtf": round(wall / seconds, 3),
        "tokens_per_sec": round(1.0 / steady_step, 2),
        "text_sec": round(text_end - start, 4),
        "first_token_sec": round(tokens[0][0] - text_end, 4),
        "decode_sec": round(decode_sec, 4),
        "text_cost_steps": round((text_end - start) / steady_step, 3),
        "decode_cost_per_frame_steps": round(decode_sec / steady_step / frames / session.audio_channels, 4),
        "progress_max_drift_points": round(drift, 2),
        "planned_phases": progress.plan_weights,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(DECODERS), default="small")
    parser.add_argument("--stereo", action="store_true")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()

    from lofi_daemon.backends.musicgen.checkpoint import runtime_bytes
    from lofi_daemon.device import DevicePlan

    if args.threads:
        torch.set_num_threads(args.threads)
    session, parameters, build_sec = build_session(args, DevicePlan(preference=args.device, dtype=args.dtype))
    device = session.device
    if device.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runs = [one_run(session, args.seconds, seed) for seed in range(args.runs)]

    dtype_bytes = {"float32": 4, "float16": 2, "bfloat16": 2}[device.dtype_name]
    decoder = {"num_hidden_layers": DECODERS[args.model][1], "hidden_size": DECODERS[args.model][0]}
    max_tokens = session.grid.tokens_for(session.grid.frames_for(30.0))
    result = {
        "model": session.model_id + " (random weights, real shape)",
        "parameters": parameters,
        "machine": {
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if device.device == "cuda" else None,
        },
        **device.describe(),
        "build_sec": round(build_sec, 1),
        "runs": runs,
        "load_estimate_bytes_30s": runtime_bytes(parameters, dtype_bytes, decoder, max_tokens),
        "peak_bytes": (torch.cuda.max_memory_allocated() if device.device == "cuda"
                       else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
        "peak_kind": "cuda max_memory_allocated" if device.device == "cuda" else "process max RSS",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
