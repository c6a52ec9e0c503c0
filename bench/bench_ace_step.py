#!/usr/bin/env python
"""ACE-Step v1 benchmarks: seconds per transformer call, decode time, peak memory, windowed-decode error.

Two modes:

* ``--mode fullsize`` (default): the real v1-3.5B configurations (ACESTEP_V1.md section 1)
  with random weights, built on the meta device and materialised directly in the target
  dtype (no 13 GB float32 copy, no download). Measures one transformer ``decode`` call
  (batch 1 = an unguided step, batch 2 = a guided step with cond and uncond batched), the
  audio decode (one-shot and windowed) and the peak memory of each, then estimates a whole
  generation at 27 and 60 steps (euler, guidance interval 0.5) and its real-time factor.
* ``--mode tiny``: the tiny fixture checkpoint (../shared/fixtures/acestep-v1-tiny): the
  same timings plus the windowed decode's difference from the one-shot decode (max abs
  error, and the level / spectral difference at window seams vs elsewhere).

Examples:

    python bench/bench_ace_step.py --mode tiny --durations 5 30 120 240
    python bench/bench_ace_step.py --durations 5 --threads 2                       # CPU, a few minutes
    python bench/bench_ace_step.py --device cuda --dtype bfloat16 --durations 30 120 240 --warmup --repeat 3

Results go to stdout as a markdown table (and ``--json PATH``); copy them into
docs/benchmarks.md (ACE-Step section) with the machine line this script prints.

Memory: on CUDA ``torch.cuda.max_memory_allocated`` per stage; on the CPU the process RSS
sampled every 2 ms by a background thread (peak minus the RSS before the stage = the
stage's working memory on top of the weights).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lofi_daemon.backends.ace_step.dcae import DcaeDecoder  # noqa: E402
from lofi_daemon.backends.ace_step.decode import AudioDecoder, WindowPlan  # noqa: E402
from lofi_daemon.backends.ace_step.guidance import guidance_window  # noqa: E402
from lofi_daemon.backends.ace_step.vocoder import MusicVocoder, VocoderConfig  # noqa: E402

SAMPLE_RATE = 44100
SAMPLES_PER_FRAME = 4096
# Official speed table (ACE-Step README, 27 steps): real-time factor on each GPU.
OFFICIAL_RTF_27 = {"RTX 3090": 12.76, "A100": 27.27, "RTX 4090": 34.48}

# The real music_dcae_f8c8 config (ACESTEP_V1.md section 1); only the decoder half is built.
FULL_DCAE_CONFIG = {
    "in_channels": 2,
    "latent_channels": 8,
    "attention_head_dim": 32,
    "decoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock"],
    "decoder_block_out_channels": [128, 256, 512, 1024],
    "decoder_layers_per_block": [3, 3, 3, 3],
    "decoder_qkv_multiscales": [[], [], [5], [5]],
    "decoder_norm_types": "rms_norm",
    "decoder_act_fns": "silu",
    "upsample_block_type": "interpolate",
}


def frames_for(seconds: float) -> int:
    """The official latent frame count: floor(duration * 44100 / 512 / 8)."""
    return int(seconds * SAMPLE_RATE / 512 / 8)


# -- measuring -------------------------------------------------------------------------------


class PeakMemory:
    """Peak memory during a ``with`` block: CUDA allocator peak, or sampled process RSS."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak_bytes = 0
        self.base_bytes = 0
        self.cpu_s = 0.0  # process CPU time of the best run (all threads): robust to a busy machine

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> "PeakMemory":
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base_bytes = torch.cuda.memory_allocated()
        else:
            self.base_bytes = self.rss()
            self._stop = threading.Event()
            self.peak_bytes = self.base_bytes
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self.rss())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, self.rss())

    @property
    def extra_bytes(self) -> int:
        return max(0, self.peak_bytes - self.base_bytes)


def timed(fn, device: str, repeat: int, warmup: bool = False):
    """Best wall time of ``repeat`` runs (after one untimed warm-up if asked), the last result, peak memory."""
    if warmup:
        fn()
    best, result = math.inf, None
    memory = PeakMemory(device)
    with memory:
        for _ in range(repeat):
            if device == "cuda":
                torch.cuda.synchronize()
            start, cpu_start = time.perf_counter(), time.process_time()
            result = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed < best:
                best, memory.cpu_s = elapsed, time.process_time() - cpu_start
    return best, result, memory


# -- building models ----------------------------------------------------------------------------


def materialise_random(module: torch.nn.Module, device: str, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """Meta-device ``module`` -> real tensors in ``dtype`` on ``device`` with scaled random values.

    Matrices get N(0, 1/fan_in) so activations stay O(1) through the depth; 1-D parameters
    (norm weights, biases, layer scales) get 1 + 0.1 N(0, 1) for weights and 0.02 N(0, 1) else.
    """
    module = module.to(dtype=dtype).to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.normal_(0.0, 1.0 / math.sqrt(max(1, fan_in)), generator=generator)
            elif name.endswith("weight"):
                p.normal_(1.0, 0.1, generator=generator)
            elif name.endswith("gamma"):
                p.fill_(0.1)
            else:
                p.normal_(0.0, 0.02, generator=generator)
    return module.eval().requires_grad_(False)


def fullsize_decoder(device: str, dtype: torch.dtype, plan: WindowPlan) -> AudioDecoder:
    with torch.device("meta"):
        dcae = DcaeDecoder(FULL_DCAE_CONFIG)
        vocoder = MusicVocoder(VocoderConfig())
    dcae = materialise_random(dcae, device, dtype, seed=1)
    vocoder = materialise_random(vocoder, device, dtype, seed=2)
    return AudioDecoder(dcae, vocoder, plan)


def fullsize_transformer(device: str, dtype: torch.dtype):
    try:
        from lofi_daemon.backends.ace_step.transformer import AceStepTransformer, TransformerConfig
    except ImportError:  # pragma: no cover - the transformer module is part of the package today
        return None
    with torch.device("meta"):
        model = AceStepTransformer(TransformerConfig())
    return materialise_random(model, device, dtype, seed=3)


def tiny_components(root: Path, device: str, dtype: torch.dtype, plan: WindowPlan):
    decoder = AudioDecoder.from_checkpoint(root, device=device, dtype=dtype, plan=plan)
    try:
        from lofi_daemon.backends.ace_step.checkpoint import load_transformer

        transformer = load_transformer(root, device=device, dtype=dtype)
    except ImportError:  # pragma: no cover
        transformer = None
    return decoder, transformer


# -- stages ---------------------------------------------------------------------------------------


def transformer_call(model, frames: int, batch: int, device: str, dtype: torch.dtype, text_tokens: int = 32):
    """One ``decode`` call as the denoising loop makes it (batch 2 = cond + uncond, ERG on uncond)."""
    width = model.config.inner_dim
    g = torch.Generator(device=device).manual_seed(0)
    latents = torch.randn(batch, 8, 16, frames, generator=g, device=device).to(dtype)
    states = torch.randn(batch, text_tokens + 2, width, generator=g, device=device).to(dtype)
    mask = torch.ones(batch, text_tokens + 2, device=device)
    mask[:, -1] = 0  # the masked lyric padding row of the empty-lyrics path
    kwargs = dict(
        hidden_states=latents,
        attention_mask=torch.ones(batch, frames, device=device, dtype=dtype),
        encoder_hidden_states=states,
        encoder_hidden_mask=mask,
        timestep=torch.full((batch,), 500.0, device=device, dtype=dtype),
        output_length=frames,
    )
    if batch == 2 and len(model.transformer_blocks) >= 20:
        kwargs["erg_diffusion"] = torch.tensor([False, True], device=device)

    def run():
        with torch.no_grad():
            return model.decode(**kwargs)

    return run


def calls_per_generation(steps: int, guidance_interval: float = 0.5) -> tuple[int, int]:
    """(unguided, guided) transformer calls of an euler generation with the default window."""
    start, end = guidance_window(steps, guidance_interval)
    guided = max(0, end - start)
    return steps - guided, guided


def seam_report(windowed: torch.Tensor, one_shot: torch.Tensor, seam_samples: list[int], frame: int = 1024) -> dict:
    """Level (dB) and log-spectral (dB) difference to the one-shot audio at seams vs elsewhere."""
    x, ref = windowed.double(), one_shot.double()
    n = x.shape[-1] // frame * frame
    lv = lambda a: 20 * torch.log10(a[..., :n].unflatten(-1, (-1, frame)).std(-1) + 1e-9)  # noqa: E731
    level = (lv(x) - lv(ref)).abs().amax(0)
    win = torch.hann_window(frame, dtype=torch.float64)
    sp = lambda a: torch.log10(torch.stft(a[..., :n], frame, frame, window=win, center=False, return_complex=True).abs() + 1e-9)  # noqa: E731
    spectral = (20 * (sp(x) - sp(ref))).pow(2).mean(1).sqrt().amax(0)
    mask = torch.zeros(level.shape[0], dtype=torch.bool)
    for s in seam_samples:
        i = s // frame
        mask[max(0, i - 1) : i + 2] = True
    out = {"seams": int(len(seam_samples))}
    if mask.any():
        out.update(level_db_at_seams=level[mask].max().item(), spectral_db_at_seams=spectral[mask[: spectral.shape[0]]].max().item())
    if (~mask).any():
        out.update(level_db_elsewhere=level[~mask].max().item(), spectral_db_elsewhere=spectral[~mask[: spectral.shape[0]]].max().item())
    return out


@dataclass
class Row:
    duration_s: float
    frames: int
    call_b1_s: float | None = None
    call_b2_s: float | None = None
    call_b2_peak_gb: float | None = None
    call_cpu_s: tuple[float, float] | None = None  # process CPU seconds of the b=1 and b=2 calls
    decode: dict = field(default_factory=dict)  # mode -> {"s", "cpu_s", "peak_gb", "extra_gb"}
    windowed_error: dict = field(default_factory=dict)
    estimates: dict = field(default_factory=dict)  # steps -> {"total_s", "rtf"}


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    dtype = getattr(torch, args.dtype)
    tdtype = getattr(torch, args.transformer_dtype or args.dtype)
    device = args.device
    plan = WindowPlan(**json.loads(args.plan)) if args.plan else WindowPlan()

    started = time.perf_counter()
    if args.mode == "fullsize":
        decoder = fullsize_decoder(device, dtype, plan) if not args.skip_decode else None
        transformer = fullsize_transformer(device, tdtype) if not args.skip_transformer else None
    else:
        decoder, transformer = tiny_components(Path(args.checkpoint), device, dtype, plan)
        if args.skip_transformer:
            transformer = None
    build_s = time.perf_counter() - started
    if args.compile and transformer is not None:
        # As AceStepPipeline.from_checkpoint(compile=True): one compiled graph per block shape.
        # Use with --warmup, or the first timed call includes the compile.
        for block in transformer.transformer_blocks:
            block.compile(dynamic=False)

    rows = []
    for seconds in args.durations:
        frames = frames_for(seconds)
        row = Row(duration_s=seconds, frames=frames)
        if transformer is not None:
            row.call_b1_s, _, mem1 = timed(transformer_call(transformer, frames, 1, device, tdtype), device, args.repeat, args.warmup)
            row.call_b2_s, _, mem = timed(transformer_call(transformer, frames, 2, device, tdtype), device, args.repeat, args.warmup)
            row.call_b2_peak_gb = mem.peak_bytes / 2**30
            row.call_cpu_s = (mem1.cpu_s, mem.cpu_s)
        if decoder is not None:
            latents = torch.randn(1, 8, 16, frames, generator=torch.Generator().manual_seed(5)).mul(1.2).to(device)
            outputs = {}
            for mode in args.decode:
                if mode == "oneshot" and seconds > args.max_oneshot_s:
                    continue
                secs, out, mem = timed(
                    lambda: decoder.decode(latents, windowed=(mode == "windowed")), device, args.repeat, args.warmup
                )
                outputs[mode] = out
                row.decode[mode] = {
                    "s": secs,
                    "cpu_s": mem.cpu_s,
                    "peak_gb": mem.peak_bytes / 2**30,
                    "extra_gb": mem.extra_bytes / 2**30,
                }
            if {"oneshot", "windowed"} <= outputs.keys():
                a, b = outputs["windowed"], outputs["oneshot"]
                seams = [w.start * SAMPLES_PER_FRAME for w in _dcae_windows(decoder, frames)[1:]]
                seams += [w.start * 512 for w in _vocoder_windows(decoder, frames)[1:]]
                row.windowed_error = {
                    "mel_max_abs": (a["mel"] - b["mel"]).abs().max().item(),
                    "wav_max_abs": (a["wav_44k"] - b["wav_44k"]).abs().max().item(),
                    **seam_report(a["wav_44k"][0].cpu(), b["wav_44k"][0].cpu(), sorted(set(seams))),
                }
        best_decode = min((v["s"] for v in row.decode.values()), default=None)
        if row.call_b1_s is not None and best_decode is not None:
            for steps in args.steps:
                unguided, guided = calls_per_generation(steps)
                total = unguided * row.call_b1_s + guided * row.call_b2_s + best_decode
                row.estimates[str(steps)] = {"total_s": total, "rtf": frames * SAMPLES_PER_FRAME / SAMPLE_RATE / total}
        rows.append(row)
        print(f"# {seconds:g} s done ({time.perf_counter() - started:.0f} s elapsed)", file=sys.stderr, flush=True)

    return {
        "machine": machine(device),
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "args": vars(args),
        "build_s": build_s,
        "weights_gb": {
            "transformer": _weight_gb(transformer),
            "dcae_decoder": _weight_gb(decoder.dcae) if decoder else None,
            "vocoder": _weight_gb(decoder.vocoder) if decoder else None,
        },
        "rows": [asdict(r) for r in rows],
    }


def _dcae_windows(decoder: AudioDecoder, frames: int):
    from lofi_daemon.backends.ace_step.decode import plan_windows

    return plan_windows(frames // decoder.dcae.global_downscale(), decoder.plan.dcae_frames, 0, decoder.plan.dcae_overlap)


def _vocoder_windows(decoder: AudioDecoder, frames: int):
    from lofi_daemon.backends.ace_step.decode import plan_windows

    return plan_windows(frames * 8, decoder.plan.vocoder_frames, 0, decoder.plan.vocoder_overlap)


def _weight_gb(module) -> float | None:
    if module is None:
        return None
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 2**30


def machine(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GB RAM, torch {torch.__version__}, {torch.get_num_threads()} threads"


def markdown(result: dict) -> str:
    a = result["args"]
    lines = [
        f"Machine: {result['machine']}. Mode {a['mode']}, device {a['device']}, decode dtype {a['dtype']}, "
        f"transformer dtype {a['transformer_dtype'] or a['dtype']}, repeat {a['repeat']}, warm-up {a['warmup']}, "
        f"compiled blocks {a.get('compile', False)}.",
        "",
        f"Load average when finished: {result['load_after']}. Times are wall seconds; CPU-seconds of the process "
        "in brackets (both threads; robust to a busy machine). Memory: peak / working memory above the weights.",
        "",
        "| audio | frames | call b=1 | call b=2 (peak) | decode one-shot | decode windowed | "
        + " | ".join(f"{s} steps total (RTF)" for s in a["steps"])
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(a["steps"]),
    ]

    def fmt_dec(d):
        return "-" if not d else f"{d['s']:.2f} s [{d['cpu_s']:.1f}] ({d['peak_gb']:.2f} / {d['extra_gb']:.2f} GB)"

    def fmt_call(r, i):
        if r["call_b1_s"] is None:
            return "-"
        secs = (r["call_b1_s"], r["call_b2_s"])[i]
        text = f"{secs:.2f} s [{r['call_cpu_s'][i]:.1f}]"
        return text + (f" ({r['call_b2_peak_gb']:.2f} GB)" if i == 1 else "")

    for r in result["rows"]:
        est = " | ".join(
            f"{r['estimates'][str(s)]['total_s']:.1f} s ({r['estimates'][str(s)]['rtf']:.2f}x)" if str(s) in r["estimates"] else "-"
            for s in a["steps"]
        )
        lines.append(
            f"| {r['duration_s']:g} s | {r['frames']} | {fmt_call(r, 0)} | {fmt_call(r, 1)} | "
            f"{fmt_dec(r['decode'].get('oneshot'))} | {fmt_dec(r['decode'].get('windowed'))} | {est} |"
        )
    errors = [r for r in result["rows"] if r["windowed_error"]]
    if errors:
        lines += ["", "| audio | windowed vs one-shot: mel max abs | wav max abs | level diff at seams / elsewhere (dB) | spectral diff at seams / elsewhere (dB) |", "|---|---|---|---|---|"]
        for r in errors:
            e = r["windowed_error"]
            def db(key):
                return f"{e[key]:.1e}" if key in e else "-"

            lines.append(
                f"| {r['duration_s']:g} s ({e['seams']} seams) | {e['mel_max_abs']:.2e} | {e['wav_max_abs']:.2e} | "
                f"{db('level_db_at_seams')} / {db('level_db_elsewhere')} | {db('spectral_db_at_seams')} / {db('spectral_db_elsewhere')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("fullsize", "tiny"), default="fullsize")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"), help="decode dtype (and transformer dtype unless --transformer-dtype)")
    parser.add_argument("--transformer-dtype", default=None, choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--durations", type=float, nargs="+", default=[5.0])
    parser.add_argument("--steps", type=int, nargs="+", default=[27, 60])
    parser.add_argument("--decode", nargs="+", default=["oneshot", "windowed"], choices=("oneshot", "windowed"))
    parser.add_argument("--max-oneshot-s", type=float, default=1e9, help="skip the one-shot decode above this duration")
    parser.add_argument("--plan", default="", help='WindowPlan overrides as JSON, e.g. \'{"dcae_frames": 64}\'')
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per stage (the best is reported)")
    parser.add_argument("--warmup", action="store_true", help="one untimed run per stage first")
    parser.add_argument("--compile", action="store_true", help="torch.compile the transformer blocks (as compile=True)")
    parser.add_argument("--skip-transformer", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument(
        "--checkpoint",
        default=str(Path(os.environ.get("LOFI_SHARED_DIR") or REPO.parent / "shared") / "fixtures" / "acestep-v1-tiny" / "checkpoint"),
    )
    parser.add_argument("--json", default="", help="also write the raw results here")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
