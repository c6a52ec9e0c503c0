"""What the text encoder is sent: the user's prompt plus tempo, key and instrumental wording.

Stable Audio 3 has no tempo or key conditioner: its conditions are the prompt, the length and
the inpaint audio. The official prompting guide (docs/guides/prompting.md) says to put the
tempo in the text as "120 BPM" and recommends the AudioSparx tags
"TrackType: Music, VocalType: Instrumental" for instrumental music. It says nothing about keys;
we write "in A minor", which reads like the training captions but is not a documented control.

The sent text, in order: the tags (when ``instrumental``), the prompt, then ", 90 BPM" and
", in A minor" when given. Example: ``TrackType: Music, VocalType: Instrumental. lofi piano,
90 BPM, in A minor``.
"""

from __future__ import annotations

INSTRUMENTAL_TAGS = "TrackType: Music, VocalType: Instrumental"
MIN_BPM, MAX_BPM = 40, 250
NOTES = ("C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B")
KEYS = ("",) + tuple(f"{note} {mode}" for note in NOTES for mode in ("major", "minor"))


def compose(prompt: str, *, bpm: int = 0, key: str = "", instrumental: bool = True) -> str:
    """The text for the encoder (``bpm`` 0 and ``key`` "" mean: let the model choose)."""
    text = " ".join(prompt.split()).strip().rstrip(".,")
    if bpm:
        text = f"{text}, {int(bpm)} BPM" if text else f"{int(bpm)} BPM"
    if key:
        text = f"{text}, in {key}" if text else f"in {key}"
    if instrumental:
        text = f"{INSTRUMENTAL_TAGS}. {text}" if text else INSTRUMENTAL_TAGS
    return text
