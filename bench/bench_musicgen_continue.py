"""What a MusicGen continuation (continue_from) costs, phase by phase, at the real checkpoint shapes.

    python bench/bench_musicgen_continue.py                       # musicgen-small, CPU, 4 s track
    python bench/bench_musicgen_continue.py --device cuda --seconds 30 --runs 3

Builds the same random-weight session as bench_musicgen.py (nothing downloaded), writes a 12 s
48 kHz source file, and runs the backend's own ``generation.generate`` with ``continue_from`` on
it. Reports each phase in decoder-step units, as the progress plan in generation.py assumes them
(``ENCODE_COST_PER_FRAME``, ``PREFILL_COST_PER_FRAME``, ``DECODE_COST_PER_FRAME``), and how far
the percent the job layer would show strays from the true share of wall time. Prints JSON;
docs/musicgen.md ("Continuing a track") records results per machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_musicgen  # noqa: E402  (the real-shape session and the timed progress sink)


def write_source(folder: Path, seconds: float = 12.0) -> Path:
    from lofi_daemon import audio

    t = np.arange(round(seconds * 48_000)) / 48_000
    tones = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32)
    path = folder / "source.wav"
    path.write_bytes(audio.encode(audio.apply_fades(tones, 48_000), 48_000, "wav"))
    return path


def one_run(session, source: Path, seconds: float, seed: int) -> dict:
    from lofi_daemon.backends.base import Continuation, GenerationRequest
    from lofi_daemon.backends.musicgen.generation import generate
    from lofi_daemon.cancel import CancelToken

    progress = bench_musicgen.TimedProgress()
    request = GenerationRequest("lofi hip hop beat, mellow piano, vinyl crackle", seconds, seed,
                                {"guidance_scale": 3.0, "temperature": 1.0, "top_k": 250, "top_p": 0.0},
                                continue_from=Continuation("source", str(source)))
    if session.device.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = generate(session, request, progress, CancelToken())
    end = time.perf_counter()

    events = progress.events
    encoded = next(t for t, phase, current, _ in events if phase == "encode" and current == 1)
    text_end = next(t for t, phase, current, _ in events if phase == "text" and current == 1)
    tokens = [(t, current) for t, phase, current, _ in events if phase == "tokens"]
    step = (tokens[-1][0] - tokens[0][0]) / (tokens[-1][1] - 1)
    prompt, frames, channels = result.metadata["prompt_frames"], result.metadata["frames"], session.audio_channels
    wall = end - start
    drift = max(abs(progress.percent(p, c, n) - 100.0 * (t - start) / wall) for t, p, c, n in events)
    return {
        "audio_sec": seconds,
        "prompt_frames": prompt,
        "generated_tokens": result.metadata["tokens"],
        "generate_sec": round(wall, 3),
        "step_sec": round(step, 5),
        "encode_sec": round(encoded - start, 4),
        "prefill_and_first_token_sec": round(tokens[0][0] - text_end, 4),
        "encode_cost_per_frame_steps": round((encoded - start) / step / prompt / channels, 4),
        # the first token's own step is taken off: what is left is the prompt's prefill
        "prefill_cost_per_frame_steps": round((tokens[0][0] - text_end - step) / step / prompt, 4),
        "decode_cost_per_frame_steps": round((end - tokens[-1][0]) / step / frames / channels, 4),
        "progress_max_drift_points": round(drift, 2),
        "planned_phases": progress.plan_weights,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(bench_musicgen.DECODERS), default="small")
    parser.add_argument("--stereo", action="store_true")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--seconds", type=float, default=4.0, help="the new track (a third of it is the prompt)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0 = the device plan's auto: the physical cores)")
    args = parser.parse_args()

    from lofi_daemon.device import DevicePlan

    # The device plan sets torch's threads when the session is built, so the count goes through it.
    plan = DevicePlan(preference=args.device, dtype=args.dtype, threads=args.threads or "auto")
    session, parameters, _ = bench_musicgen.build_session(args, plan)
    with tempfile.TemporaryDirectory() as folder:
        source = write_source(Path(folder))
        runs = [one_run(session, source, args.seconds, seed) for seed in range(args.runs)]
    print(json.dumps({
        "model": session.model_id + " (random weights, real shape)",
        "parameters": parameters,
        **session.device.describe(),
        "gpu": torch.cuda.get_device_name() if session.device.device == "cuda" else None,
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
