"""Lyric-token ids for the instrumental conditioning we support: ``[instrumental]``, ``[inst]``, ``""``.

The official pipeline tokenizes lyrics with its ``VoiceBpeTokenizer``, whose vocabulary
(``acestep/models/lyrics_utils/vocab.json``) ships with the official Python package, not
with the checkpoint. We make instrumental music only, so instead of that tokenizer we
keep the few ids the official code produces for the instrumental tags. They come from
running the official ``tokenize_lyrics`` (recorded in the tiny golden fixtures' README
and ``manifest.json`` -> ``cases.*.derived.lyrics``, and in ACESTEP_V1.md section 9):

    "[instrumental]" -> [START] [en] [UNK] ins tru ment al [UNK] [SPACE]
                        261     259  1     718 1951 763 56  1     2
    "[inst]"         -> [START] [en] [inst] [SPACE]
                        261     259  6688   2

The official algorithm, restricted to these tags: start with ``[START]``; for each
``\\n``-separated line, stripped, an empty line adds ``2``; a tag line adds its ids and
then ``2``. Tags are lowercased first (the official cleaner lowercases), so
``[Instrumental]`` gives the same ids. Empty lyrics (``""``) are the official
empty-lyrics path: one masked padding token ``[[0]]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InvalidParams

START = 261  # "[START]", put before the first line
LINE_END = 2  # appended after every line ("[SPACE]" in the official vocabulary)

#: encode(line, "en") of the official VoiceBpeTokenizer, for the lines we accept.
TAG_IDS: dict[str, tuple[int, ...]] = {
    "[instrumental]": (259, 1, 718, 1951, 763, 56, 1),
    "[inst]": (259, 6688),
}

INSTRUMENTAL_TAGS = ("[instrumental]", "[inst]", "")


@dataclass(frozen=True)
class LyricTokens:
    ids: tuple[int, ...]
    mask: tuple[int, ...]


def encode_lyrics(lyrics: str) -> LyricTokens:
    """The ``lyric_token_idx`` / ``lyric_mask`` row the official pipeline would build."""
    if not isinstance(lyrics, str):
        raise InvalidParams(
            "lyrics must be a string: '[instrumental]', '[inst]' or ''", field="lyrics"
        )
    if len(lyrics) == 0:
        return LyricTokens(ids=(0,), mask=(0,))
    ids = [START]
    for line in lyrics.split("\n"):
        line = line.strip()
        if not line:
            ids.append(LINE_END)
            continue
        tag = TAG_IDS.get(line.lower())
        if tag is None:
            raise InvalidParams(
                f"lyrics line {line!r} is not supported: lofi makes instrumental music, so lyrics may only be "
                "'[instrumental]', '[inst]' or empty",
                field="lyrics",
                choices=list(INSTRUMENTAL_TAGS),
            )
        ids.extend(tag)
        ids.append(LINE_END)
    return LyricTokens(ids=tuple(ids), mask=(1,) * len(ids))
