"""AceStepPipeline end to end against every case the official pipeline computed.

Each case is called with the official parameters recorded in the manifest and every
tensor the manifest lists is compared within its tolerance. ``wav_48k`` is compared with
our port of torchaudio's sinc-Hann resampler (``resample="sinc_hann"``), the one the
official code uses; the daemon's default is soxr (checked separately below).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from lofi_daemon.cancel import CancelToken
from lofi_daemon.errors import InvalidParams, JobCancelled, ModelInferenceFailed


def test_every_e2e_case_matches_the_official_pipeline(golden, pipeline, official_call, e2e_case):
    key = f"e2e_{e2e_case}"
    reference = golden.tensors(key)
    ours = pipeline(**official_call(e2e_case), return_intermediates=True, resample="sinc_hann").intermediates
    listed = golden.file_entry(key)["tensors"]
    assert set(listed) <= set(ours), f"not produced: {sorted(set(listed) - set(ours))}"
    for name in listed:
        golden.check(key, name, ours[name], reference[name])


def test_heun_is_guided_by_the_requested_step_count_not_its_call_count(golden, pipeline, official_call):
    derived = golden.case("heun_apg")["derived"]
    out = pipeline(**official_call("heun_apg"), return_intermediates=True)
    calls = out.intermediates["step_model_output"].shape[0]
    assert calls == derived["loop_iterations"] == 2 * derived["num_inference_steps_returned_by_retrieve_timesteps"] - 1
    assert out.intermediates["guided_loop_indices"].tolist() == derived["guided_loop_indices_observed"]


def test_default_soxr_output_has_the_official_length_and_sound(golden, pipeline, official_call):
    reference = golden.tensors("e2e_euler_apg")["wav_48k"]
    wav = pipeline(**official_call("euler_apg")).wav_48k
    assert wav.shape == reference.shape
    # Different resampler, same audio. The random tiny vocoder puts unusual energy near
    # 22 kHz, where the two filters' roll-offs differ, so this is not closer than ~0.997.
    corr = torch.corrcoef(torch.stack([wav.flatten(), reference.flatten()]))[0, 1].item()
    assert corr > 0.99


def test_same_seed_gives_identical_audio_and_another_seed_does_not(golden, pipeline, official_call):
    call = dict(official_call("pingpong_cfg"), infer_step=3)
    first = pipeline(**call).wav_48k
    again = pipeline(**call).wav_48k
    other = pipeline(**dict(call, seed=call["seed"] + 1)).wav_48k
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-3


def test_length_floors_to_whole_latent_frames(golden, pipeline, official_call):
    out = pipeline(**dict(official_call("euler_apg"), duration=7.3, infer_step=2))
    assert out.frame_length == 78  # int(7.3 * 44100 / 4096)
    assert out.wav_48k.shape == (2, math.ceil(78 * 4096 * 48000 / 44100))
    assert 7.3 - 0.0929 < out.duration_sec <= 7.3


def test_progress_counts_every_transformer_call_and_decode_unit(golden, pipeline, official_call):
    seen: list[tuple[str, int, int]] = []
    pipeline(**dict(official_call("heun_apg"), infer_step=3), progress=lambda *u: seen.append(u))
    phases = [p for p, _, _ in seen]
    assert phases.index("text") < phases.index("diffusion") < phases.index("decode")
    diffusion = [(c, t) for p, c, t in seen if p == "diffusion"]
    assert diffusion[-1] == (5, 5)  # heun: 2N-1 calls
    assert [c for c, _ in diffusion] == sorted(c for c, _ in diffusion)
    decode = [(c, t) for p, c, t in seen if p == "decode"]
    assert decode[-1][0] == decode[-1][1]


class _CancelAfter(CancelToken):
    """Cancels once ``calls`` diffusion calls were reported done."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def on_progress(self, phase: str, current: int, total: int) -> None:
        if phase == "diffusion" and current >= self.calls:
            self.cancel()


def test_cancel_stops_before_the_next_transformer_call(golden, pipeline, official_call):
    cancel = _CancelAfter(2)
    with pytest.raises(JobCancelled) as err:
        pipeline(**official_call("euler_apg"), progress=cancel.on_progress, cancel=cancel)
    assert (err.value.at_step, err.value.total_steps) == (2, 8)


def test_nan_in_the_model_output_is_an_inference_failure(golden, pipeline, official_call):
    broken = copy.copy(pipeline)
    broken.transformer = copy.deepcopy(pipeline.transformer)
    with torch.no_grad():
        broken.transformer.final_layer.linear.bias[0] = float("nan")
    with pytest.raises(ModelInferenceFailed) as err:
        broken(**dict(official_call("euler_apg"), infer_step=2))
    assert err.value.hint == "Retry with another seed."
    assert err.value.facts["at_step"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"infer_step": 0}, "infer_step"),
        ({"infer_step": 201}, "infer_step"),
        ({"duration": 241.0}, "duration"),
        ({"scheduler_type": "ddim"}, "scheduler_type"),
        ({"cfg_type": "cfg_star"}, "cfg_type"),
        ({"guidance_interval": 1.5}, "guidance_interval"),
        ({"omega_scale": float("nan")}, "omega_scale"),
        ({"use_erg_tag": "yes"}, "use_erg_tag"),
        ({"lyrics": "sing along"}, "lyrics"),
        ({"prompt": "  "}, "prompt"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_rejected_naming_the_argument(golden, pipeline, official_call, change, field):
    with pytest.raises(InvalidParams) as err:
        pipeline(**dict(official_call("euler_apg"), **change))
    assert err.value.facts["field"] == field
    assert field in err.value.message
