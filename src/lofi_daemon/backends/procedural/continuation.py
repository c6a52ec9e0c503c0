"""Going on from a library track (``continue_from``): the same song's next section.

    source track ─┬─ its sidecar: prompt, seed, next_section_offset, key, bpm  (untrusted: checked)
                  └─ its audio: the last seconds become the continuation's prefix

    continuation = [ prefix: the source's last 2+ s | lead-in ] [ new part: whole bars at the source's tempo ]
                                                                ^ join_frame (48 kHz)

- **Same prompt, a procedural source**: the same song goes on. The new part is rendered with
  the source's song seed (``song_seed``, else ``seed``) from its ``next_section_offset``, so key,
  mode, progressions, motifs and tempo carry over and the form moves on (A, B, break, ...).
- **Another prompt** (a mood change) or another backend's track: the new prompt's genre and
  instruments with this request's seed, but the source's key, mode and exact tempo where its
  sidecar names them, so the change of mood comes without a jump in key or tempo.

The join: the worker plays the source to its last sample and goes on from ``join_frame``
(playback/stream.py). The metadata's ``lead_in_frames`` (``LEAD_IN_SEC``) tells it to move, over
the source's last frames, into this prefix's end, which leads into the new part: there the
source's tail is faded (equal power) into the new part's own last moments, which flow into its
first sample (a procedural track is loop-closed). The new part starts on the source's bar grid:
its first downbeat is where the source ends.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidParams
from ...files import UnsafeFile, read_regular_file
from ..base import GeneratedAudio, GenerationRequest
from .harmony import KEY_NAMES
from .instruments import SAMPLE_RATE

log = logging.getLogger(__name__)

PREFIX_SEC = 2.0  # at least this much of the source's end begins the continuation
LEAD_IN_SEC = 0.25  # the prefix's last frames: the source faded into the new part's own lead-in
MAX_SIDECAR_BYTES = 1 << 20
MAX_SOURCE_SEC = 900  # as the player: a longer file is no track of ours
KEY_RE = re.compile(r"^(" + "|".join(re.escape(k) for k in KEY_NAMES) + r") (major|minor)$")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Keep:
    """What a track keeps of another song instead of drawing it from its seed (None: the seed
    decides): a continuation keeps its source's key, mode and exact tempo; the radio's bridge
    plays at its first track's tempo."""

    tonic: int | None = None  # MIDI note of the tonic, 45..56
    minor: bool | None = None
    bpm: float | None = None


@dataclass
class Plan:
    """How a continuation is made: the new part's song and length, and the source it follows."""

    source: np.ndarray  # (2, frames) at 48 kHz
    track_id: str
    total_frames: int
    new_sec: float
    seed: int
    section_offset: int
    keep: Keep
    same_song: bool
    kept: list[str]


class _Source:
    """What the continuation may use of its source, each field checked (None: not usable)."""

    def __init__(self, meta: dict[str, Any], model_version: str) -> None:
        self.procedural = meta.get("backend") == "procedural" and meta.get("model_version") == model_version
        self.prompt = meta.get("prompt") if isinstance(meta.get("prompt"), str) else None
        seed = meta.get("song_seed", meta.get("seed"))
        self.seed = seed if _whole(seed) and 0 <= seed <= MAX_SEED else None
        nxt = meta.get("next_section_offset")
        self.next_section = nxt if _whole(nxt) and 0 <= nxt <= 10_000 else None
        bpm = meta.get("bpm")
        self.bpm = float(bpm) if _number(bpm) and 20.0 <= bpm <= 400.0 else None
        beats = meta.get("beats")
        self.beats = float(beats) if _number(beats) and 1 <= beats <= 10_000 else None
        join = meta.get("join_frame")  # a continuation's beats are those of its new part, after join_frame
        self.join_frame = join if _whole(join) and join >= 0 else 0
        key = KEY_RE.match(meta["key"]) if isinstance(meta.get("key"), str) else None
        self.tonic = 45 + (KEY_NAMES.index(key.group(1)) - 45) % 12 if key else None  # A2..G#3, as songs draw it
        self.minor = key.group(2) == "minor" if key else None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_source(path: Path, track_id: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The source's audio (2, frames) at 48 kHz and its sidecar; InvalidParams when unusable."""
    from ... import audio

    sidecar = path.with_name(f"{track_id}.json")
    try:
        meta = json.loads(read_regular_file(sidecar, MAX_SIDECAR_BYTES))
        frames, rate, channels = audio.probe(path)
        if rate != SAMPLE_RATE or not 0 < frames <= MAX_SOURCE_SEC * rate or not 1 <= channels <= 8:
            raise ValueError(f"{frames} frames at {rate} Hz in {channels} channels is no library track")
        samples, rate = audio.read(path)
    except (OSError, UnsafeFile, ValueError, RuntimeError) as exc:  # (soundfile raises RuntimeError)
        raise InvalidParams(f"cannot read the track to continue ({track_id}): {exc}", field="continue_from",
                            hint="Continue another track, or leave continue_from out.") from None
    if not isinstance(meta, dict):
        raise InvalidParams(f"the sidecar of the track to continue ({track_id}) is not a JSON object",
                            field="continue_from", hint="Continue another track, or leave continue_from out.")
    if not np.all(np.isfinite(samples)):
        raise InvalidParams(f"the track to continue ({track_id}) holds NaN/inf samples", field="continue_from",
                            hint="Continue another track, or leave continue_from out.")
    stereo = samples[:2] if samples.shape[0] >= 2 else np.repeat(samples, 2, axis=0)
    return np.ascontiguousarray(stereo, dtype=np.float32), meta


def plan_continuation(request: GenerationRequest, model_version: str, section_offset: int = 0) -> Plan:
    """Read the source (untrusted) and decide what the new part is."""
    assert request.continue_from is not None
    track_id = request.continue_from.track_id
    source, meta = read_source(Path(request.continue_from.path), track_id)
    src = _Source(meta, model_version)
    n_source = source.shape[1]
    bpm = src.bpm
    if src.beats is not None and bpm is not None and src.join_frame < n_source:
        exact = src.beats * 60.0 * SAMPLE_RATE / (n_source - src.join_frame)  # the sidecar rounds bpm
        bpm = exact if abs(exact / bpm - 1.0) < 0.01 else bpm
    same_song = (src.procedural and src.prompt == request.prompt and src.seed is not None
                 and src.next_section is not None)
    seed = src.seed if same_song and src.seed is not None else request.seed
    offset = src.next_section if src.next_section is not None else max(1, section_offset)
    kept = [name for name, value in (("key", src.tonic), ("mode", src.minor), ("tempo", bpm)) if value is not None]
    if not same_song:
        log.info("continuing %s with a new song (%s), keeping %s", track_id,
                 "another prompt" if src.procedural else "not a procedural track of this version",
                 ", ".join(kept) or "nothing")
    total = int(round(request.duration_sec * SAMPLE_RATE))
    return Plan(source=source, track_id=track_id, total_frames=total, new_sec=_new_part_sec(total, bpm), seed=seed,
                section_offset=offset, keep=Keep(tonic=src.tonic, minor=src.minor, bpm=bpm), same_song=same_song,
                kept=kept)


def assemble(plan: Plan, new: GeneratedAudio) -> GeneratedAudio:
    """The prefix (the source's end, leading into the new part) and the new part."""
    body = np.asarray(new.samples, dtype=np.float32)
    n_source = plan.source.shape[1]
    prefix_frames = max(int(LEAD_IN_SEC * SAMPLE_RATE), plan.total_frames - body.shape[1])
    # A source shorter than the prefix is taken round its own loop (what it plays when it loops).
    prefix = plan.source[:, np.arange(n_source - prefix_frames, n_source) % n_source].copy()
    lead = min(int(LEAD_IN_SEC * SAMPLE_RATE), prefix_frames, body.shape[1])
    t = (np.arange(lead, dtype=np.float64) + 0.5) / lead
    prefix[:, -lead:] = (prefix[:, -lead:] * np.cos(0.5 * np.pi * t)
                         + body[:, -lead:] * np.sin(0.5 * np.pi * t)).astype(np.float32)
    metadata = {**new.metadata, "continues": plan.track_id, "join_frame": int(prefix_frames), "lead_in_frames": lead,
                "song_seed": int(plan.seed), "same_song": plan.same_song, "kept": plan.kept}
    return GeneratedAudio(samples=np.concatenate([prefix, body], axis=1), sample_rate=new.sample_rate,
                          metadata=metadata, loopable=False, prompt_report=new.prompt_report)


def _new_part_sec(total: int, bpm: float | None) -> float:
    """The new part's length: whole bars at the source's tempo (whole beats when not one bar
    fits), what is left of the asked length after at least PREFIX_SEC of prefix."""
    room = total - int(PREFIX_SEC * SAMPLE_RATE)
    if bpm is None:
        return room / SAMPLE_RATE
    beat = 60.0 * SAMPLE_RATE / bpm
    bars = math.floor(room / (4 * beat))
    beats = 4 * bars if bars >= 1 else max(1, math.floor(room / beat))
    return beats * beat / SAMPLE_RATE
