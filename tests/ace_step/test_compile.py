"""The optional torch.compile path keeps parity with the official pipeline.

Slow on purpose: the first call waits for the compiler (about 100 s on a 2-core CPU).
"""

from __future__ import annotations

from lofi_daemon.backends.ace_step.pipeline import AceStepPipeline


def test_a_compiled_transformer_still_matches_the_official_pipeline(golden, official_call):
    pipeline = AceStepPipeline.from_checkpoint(golden.checkpoint, device="cpu", compile=True)
    key = "e2e_euler_apg"
    reference = golden.tensors(key)
    ours = pipeline(**official_call("euler_apg"), return_intermediates=True, resample="sinc_hann").intermediates
    for name in ("step_model_output", "step_latents_out", "final_latents", "wav_48k"):
        golden.check(key, name, ours[name], reference[name])
