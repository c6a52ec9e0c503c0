#!/usr/bin/env python
"""ACE-Step v1 speed, before/after: today's code against a reference git revision, in one process.

The reference (default ``main``) is extracted with ``git archive`` into a temporary package
(``lofi_ref``) and built on the meta device; its parameters are then *the same tensors* as
ours (``load_state_dict(assign=True)``), so both run on identical full-size random weights
and inputs without a second copy of the weights. Runs alternate (ref, ours, ours, ref, ...)
so a change in machine load hits both sides alike; every timing is printed with the load
average at that moment. Equal output is checked on every run pair:

* decode (DCAE + vocoder + 48 kHz resample): max abs difference of the 48 kHz waveform;
* transformer call: max abs difference of the velocity relative to its max abs value.

Examples (2-core CPU: a full-size 10 s decode takes ~1 min a side, a 30 s call ~25-50 s):

    python bench/bench_ace_step_ab.py decode --seconds 10 --threads 1 --repeat 2
    python bench/bench_ace_step_ab.py transformer --seconds 30 --batch 1 2 --threads 1 --repeat 2
    python bench/bench_ace_step_ab.py profile-decode --seconds 2     # top operators by self time
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import bench_ace_step as base  # noqa: E402
from lofi_daemon.backends.ace_step.decode import WindowPlan  # noqa: E402


def reference_package(rev: str) -> str:
    """``src/lofi_daemon`` at ``rev`` as an importable package named ``lofi_ref``."""
    tmp = Path(tempfile.mkdtemp(prefix="lofi-ref-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src/lofi_daemon"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / "src" / "lofi_daemon").rename(tmp / "lofi_ref")
    sys.path.insert(0, str(tmp))
    return "lofi_ref"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def share_weights(reference: torch.nn.Module, ours: torch.nn.Module) -> torch.nn.Module:
    reference.load_state_dict(ours.state_dict(), strict=True, assign=True)
    return reference.eval().requires_grad_(False)


def timed(fn):
    memory = base.PeakMemory("cpu")
    with memory:
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return out, wall, cpu, memory.extra_bytes / 2**30


def interleaved(runs: dict, repeat: int, compare) -> dict:
    """Alternate the sides ``repeat`` times each; print every run; return per-side summaries."""
    names = list(runs)
    results = {name: [] for name in names}
    diffs = []
    for r in range(repeat):
        order = names if r % 2 == 0 else names[::-1]
        outputs = {}
        for name in order:
            out, wall, cpu, extra = timed(runs[name])
            outputs[name] = out
            results[name].append((wall, cpu, extra))
            print(f"  run {r + 1} {name:9s} {wall:8.2f} s wall  {cpu:8.2f} s CPU  +{extra:.2f} GB  load {load()}",
                  flush=True)
        diffs.append(compare(outputs[names[0]], outputs[names[1]]))
        print(f"  run {r + 1} difference {diffs[-1]:.3g}", flush=True)
        del outputs
    summary = {}
    for name, rows in results.items():
        walls = [w for w, _, _ in rows]
        summary[name] = {"best_s": min(walls), "median_s": statistics.median(walls),
                         "best_cpu_s": min(c for _, c, _ in rows), "extra_gb": max(e for _, _, e in rows)}
    a, b = summary[names[0]], summary[names[1]]
    summary["speedup_best"] = a["best_s"] / b["best_s"]
    summary["speedup_median"] = a["median_s"] / b["median_s"]
    summary["speedup_cpu"] = a["best_cpu_s"] / b["best_cpu_s"]
    summary["max_difference"] = max(diffs)
    return summary


# -- decode ------------------------------------------------------------------------------------


def decode_ab(args, ref: str) -> dict:
    from lofi_daemon.backends.ace_step.resample import resample_44k_to_48k

    ours = base.fullsize_decoder("cpu", torch.float32, WindowPlan())
    dcae_mod = importlib.import_module(f"{ref}.backends.ace_step.dcae")
    vocoder_mod = importlib.import_module(f"{ref}.backends.ace_step.vocoder")
    decode_mod = importlib.import_module(f"{ref}.backends.ace_step.decode")
    with torch.device("meta"):
        ref_dcae = dcae_mod.DcaeDecoder(base.FULL_DCAE_CONFIG)
        ref_vocoder = vocoder_mod.MusicVocoder(vocoder_mod.VocoderConfig())
    reference = decode_mod.AudioDecoder(share_weights(ref_dcae, ours.dcae), share_weights(ref_vocoder, ours.vocoder),
                                        decode_mod.WindowPlan())
    frames = base.frames_for(args.seconds)
    latents = torch.randn(1, 8, 16, frames, generator=torch.Generator().manual_seed(5)).mul(1.2)
    windowed = {"auto": None, "oneshot": False, "windowed": True}[args.decode]

    def run(decoder):
        def go():
            with torch.no_grad():
                wav = decoder.decode(latents, windowed=windowed)["wav_44k"][0]
            return resample_44k_to_48k(wav, method="sinc_hann")
        return go

    def compare(a, b):
        return (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item()

    return interleaved({"reference": run(reference), "ours": run(ours)}, args.repeat, compare)


# -- transformer --------------------------------------------------------------------------------


def transformer_ab(args, ref: str, batch: int, model=None, reference=None) -> dict:
    frames = base.frames_for(args.seconds)
    ours_run = base.transformer_call(model, frames, batch, "cpu", torch.float32)
    ref_run = base.transformer_call(reference, frames, batch, "cpu", torch.float32)

    def compare(a, b):
        return ((a - b).abs().max() / a.abs().max()).item()

    return interleaved({"reference": ref_run, "ours": ours_run}, args.repeat, compare)


def build_transformers(ref: str, layers: int | None = None):
    import dataclasses

    from lofi_daemon.backends.ace_step.transformer import AceStepTransformer, TransformerConfig

    config = TransformerConfig()
    if layers:
        config = dataclasses.replace(config, num_layers=layers)
    with torch.device("meta"):
        model = AceStepTransformer(config)
    model = base.materialise_random(model, "cpu", torch.float32, seed=3)
    ref_mod = importlib.import_module(f"{ref}.backends.ace_step.transformer")
    with torch.device("meta"):
        reference = ref_mod.AceStepTransformer(ref_mod.TransformerConfig(**{
            f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "lyric_encoder"}))
    return model, share_weights(reference, model)


# -- profile ------------------------------------------------------------------------------------


def profile_decode(args) -> None:
    decoder = base.fullsize_decoder("cpu", torch.float32, WindowPlan())
    latents = torch.randn(1, 8, 16, base.frames_for(args.seconds), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        decoder.decode(latents)
        with torch.profiler.profile() as prof:
            decoder.decode(latents)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("decode", "transformer", "profile-decode"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2], help="transformer batch: 1 unguided, 2 guided")
    parser.add_argument("--repeat", type=int, default=2, help="runs per side (alternating)")
    parser.add_argument("--decode", choices=("auto", "oneshot", "windowed"), default="auto")
    parser.add_argument("--ref", default="main", help="git revision of the reference code")
    parser.add_argument("--layers", type=int, default=0, help="transformer depth (0: the real 24; fewer for quick looks)")
    parser.add_argument("--keep-denormals", action="store_true", help="do not flush denormals to zero")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(not args.keep_denormals)
    print(f"# machine: {base.machine('cpu')}; ref {args.ref}; load {load()}", flush=True)
    if args.what == "profile-decode":
        torch.set_num_threads(args.threads[0])
        profile_decode(args)
        return 0
    ref = reference_package(args.ref)
    results = []
    models = build_transformers(ref, args.layers) if args.what == "transformer" else (None, None)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in (args.batch if args.what == "transformer" else [None]):
            label = f"{args.what} {args.seconds:g} s, {threads} thread(s)" + (f", batch {batch}" if batch else "")
            print(f"# {label}", flush=True)
            if args.what == "decode":
                summary = decode_ab(args, ref)
            else:
                summary = transformer_ab(args, ref, batch, *models)
            summary.update(label=label, threads=threads, batch=batch, seconds=args.seconds, load_after=load())
            print(f"# {label}: speedup best {summary['speedup_best']:.2f}x, median {summary['speedup_median']:.2f}x, "
                  f"CPU {summary['speedup_cpu']:.2f}x; max difference {summary['max_difference']:.3g}; "
                  f"extra RSS ref {summary['reference']['extra_gb']:.2f} GB / ours {summary['ours']['extra_gb']:.2f} GB",
                  flush=True)
            results.append(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
