"""Seconds, EnCodec frames, decoder tokens and samples, for one MusicGen checkpoint.

EnCodec 32 kHz has a hop of 640 samples, so one frame is 20 ms (50 frames per second).
MusicGen predicts its K codebooks with the "delay" pattern: codebook k lags k steps
behind codebook 0, so ``frames`` frames need ``frames + K - 1`` decoder steps
(1503 steps = 1500 frames = 30.00 s with K = 4). Stereo checkpoints interleave 2 x 4
codebooks that are delayed per channel, so K is the per-channel count there too.

A continuation's prompt (the source track's last frames, given as codes) is part of those
frames but is not generated: ``frames`` in all need ``frames + K - 1 - prompt`` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Durations are given in seconds with float noise (e.g. 5.1 * 50 = 254.99999999999997).
_EPSILON = 1e-6

# How much of the source a continuation keeps as its prompt: a third of the new track, at most
# 10 s. The prompt shares MusicGen's 30 s window with the new part, so a 30 s track is 10 s of
# the old one and 20 s of new music; 10 s is several bars at any lofi tempo (key, tempo and
# sound to carry over), close to the 12 s audiocraft keeps when it extends past 30 s.
PROMPT_SHARE = 1 / 3
MAX_PROMPT_SEC = 10.0
# Below a second there is too little of the old track to carry anything over.
MIN_PROMPT_SEC = 1.0


@dataclass(frozen=True)
class TokenGrid:
    sample_rate: int  # EnCodec's rate (32 kHz)
    hop_length: int  # samples per frame (640)
    codebooks_per_channel: int  # K in the delay pattern (4)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def frames_for(self, duration_sec: float) -> int:
        """Enough whole frames to cover ``duration_sec`` (the tail is trimmed afterwards)."""
        return max(1, math.ceil(duration_sec * self.frame_rate - _EPSILON))

    def tokens_for(self, frames: int) -> int:
        """Decoder steps that produce ``frames`` complete frames."""
        return frames + self.codebooks_per_channel - 1

    def samples_for(self, duration_sec: float) -> int:
        return round(duration_sec * self.sample_rate)

    def prompt_frames(self, duration_sec: float, source_sec: float) -> int:
        """Whole frames of the source's tail that prompt a ``duration_sec`` continuation
        (never more than the source has); below ``min_prompt_frames`` it is too short."""
        wanted = min(duration_sec * PROMPT_SHARE, MAX_PROMPT_SEC, source_sec)
        return max(0, math.floor(wanted * self.frame_rate + _EPSILON))

    @property
    def min_prompt_frames(self) -> int:
        return math.ceil(MIN_PROMPT_SEC * self.frame_rate - _EPSILON)

    def new_tokens(self, frames: int, prompt_frames: int) -> int:
        """Decoder steps that turn ``prompt_frames`` given frames into ``frames`` in all."""
        return self.tokens_for(frames) - prompt_frames

    @classmethod
    def from_config(cls, config: dict) -> "TokenGrid":
        """Read the grid from a MusicGen ``config.json`` (as a dict)."""
        codec = config["audio_encoder"]
        decoder = config["decoder"]
        hop = math.prod(int(r) for r in codec["upsampling_ratios"])
        channels = int(decoder.get("audio_channels", 1))
        return cls(
            sample_rate=int(codec["sampling_rate"]),
            hop_length=hop,
            codebooks_per_channel=int(decoder["num_codebooks"]) // channels,
        )
