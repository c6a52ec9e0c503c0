"""The text sent for bpm/key/instrumental, and the inpaint conditioning for continuing a track."""

from __future__ import annotations

import pytest

from lofi_daemon.backends.stable_audio_3.prompt import INSTRUMENTAL_TAGS, KEYS, compose


def test_the_prompt_alone_is_sent_as_written_apart_from_whitespace():
    assert compose("  lofi   piano.  ", instrumental=False) == "lofi piano"


def test_tempo_and_key_are_written_into_the_text_the_way_the_prompting_guide_shows():
    assert compose("lofi piano", bpm=90, key="A minor", instrumental=False) == "lofi piano, 90 BPM, in A minor"


def test_instrumental_adds_the_audiosparx_tags_first():
    assert compose("lofi piano", bpm=72) == f"{INSTRUMENTAL_TAGS}. lofi piano, 72 BPM"
    assert compose("", instrumental=True) == INSTRUMENTAL_TAGS


def test_keys_cover_every_note_in_both_modes_and_unset():
    assert "" in KEYS and "F# minor" in KEYS and "Bb major" in KEYS
    assert len(KEYS) == 1 + 17 * 2


torch = pytest.importorskip("torch")

from lofi_daemon.backends.stable_audio_3.inpaint import empty, keep_head, paste_back  # noqa: E402


def test_text_to_music_feeds_zeros_with_the_mask_channel_first():
    cond = empty(16, 10)
    assert cond.shape == (1, 17, 10) and not cond.any()


def test_keeping_a_head_sets_the_mask_and_the_latents_there_only():
    kept = torch.randn(1, 16, 4)
    cond = keep_head(kept, 10)
    assert cond[0, 0].tolist() == [1.0] * 4 + [0.0] * 6
    assert torch.equal(cond[:, 1:, :4], kept) and not cond[:, 1:, 4:].any()


def test_the_mask_stops_at_seconds_total_like_the_official_code():
    cond = keep_head(torch.randn(1, 16, 8), 10, valid=5)
    assert cond[0, 0].tolist() == [1.0] * 5 + [0.0] * 5


def test_a_continuation_starts_with_the_kept_audio_up_to_two_latents_before_the_seam():
    from sa3_fixtures import checkpoint

    same_s = checkpoint().build_same_s()
    tail = torch.randn(1, 16, 8, generator=torch.Generator().manual_seed(7))  # the old track's end
    cond = keep_head(tail, 20)
    sampled = torch.randn(1, 16, 20, generator=torch.Generator().manual_seed(8))  # what the DiT made
    with torch.no_grad():
        new_track = same_s.decode(paste_back(sampled, cond))
        old_tail = same_s.decode(torch.cat([tail, sampled[..., 8:]], dim=-1))
        alone = same_s.decode(tail)
    step = same_s.samples_per_latent
    assert torch.equal(new_track, old_tail)  # the kept latents are exactly the source's
    # The head sounds as the old track's tail did (its audio reaches two latents across the seam).
    assert (new_track[..., : 6 * step] - alone[..., : 6 * step]).abs().max() < 1e-5
    # and the rest is the model's own.
    assert torch.equal(paste_back(sampled, cond)[..., 8:], sampled[..., 8:])
