"""The decode path (DCAE decoder -> mel -> vocoder -> 44.1 kHz -> 48 kHz) against the official one.

48 kHz output is compared through our port of the official sinc-Hann resampler
(method "sinc_hann"); the daemon's default soxr resampler is tested in test_resample.py.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from lofi_daemon.backends.ace_step.dcae import DcaeDecoder
from lofi_daemon.backends.ace_step.decode import AudioDecoder
from lofi_daemon.backends.ace_step.resample import resample_44k_to_48k
from lofi_daemon.errors import ModelLoadFailed


@pytest.fixture
def decoder(golden):
    return AudioDecoder.from_checkpoint(golden.checkpoint, device="cpu", dtype=torch.float32)


def test_raw_dcae_decoder_matches_the_official_one(golden, decoder):
    ref = golden.tensors("unit_dcae_decoder")
    with torch.no_grad():
        out = decoder.dcae.decoder(ref["in_latent"])
    golden.check("unit_dcae_decoder", "out_decoder", out, ref["out_decoder"])


def test_music_dcae_decode_matches_every_official_stage(golden, decoder):
    key = "unit_music_dcae_decode"
    ref = golden.tensors(key)
    with torch.no_grad():
        raw = decoder.dcae.decoder(ref["in_latent"] / 0.1786 - 1.9091)
    golden.check(key, "out_dcae_decoder_output", raw, ref["out_dcae_decoder_output"])
    out = decoder.decode(ref["in_latent"], windowed=False)
    golden.check(key, "out_mel", out["mel"][0], ref["out_mel"])
    golden.check(key, "out_wav_44k", out["wav_44k"][0], ref["out_wav_44k"])
    golden.check(key, "out_wav_48k", resample_44k_to_48k(out["wav_44k"][0], method="sinc_hann"), ref["out_wav_48k"])


def test_final_latents_of_every_case_decode_to_the_official_track(golden, decoder, e2e_case):
    case = e2e_case  # every case in the manifest (conftest parametrizes)
    key = f"e2e_{case}"
    ref = golden.tensors(key)
    out = decoder.decode(ref["final_latents"])  # 5 s: the automatic choice is the one-shot decode
    if "mel" in ref:  # the detailed cases also recorded the intermediate stages
        golden.check(key, "mel", out["mel"][0], ref["mel"])
        golden.check(key, "wav_44k", out["wav_44k"][0], ref["wav_44k"])
    golden.check(key, "wav_48k", resample_44k_to_48k(out["wav_44k"][0], method="sinc_hann"), ref["wav_48k"])


def test_output_length_is_4096_samples_per_latent_frame(golden, decoder):
    frames = golden.case("euler_apg")["derived"]["frame_length"]
    out = decoder.decode(torch.zeros(1, 8, 16, frames))
    assert tuple(out["mel"].shape) == (1, 2, 128, 8 * frames)
    assert tuple(out["wav_44k"].shape) == (1, 2, 4096 * frames)
    assert out["wav_44k"].dtype == torch.float32


def test_only_the_decoder_half_of_the_autoencoder_is_loaded(decoder):
    names = list(decoder.dcae.state_dict())
    assert names and all(n.startswith("decoder.") for n in names)
    assert not hasattr(decoder.dcae, "encoder")


def test_full_size_dcae_config_builds_a_79m_parameter_decoder_on_the_meta_device(golden):
    config = dict(golden.manifest["checkpoint"]["configs"]["music_dcae_f8c8"])
    # The real music_dcae_f8c8 sizes (ACESTEP_V1.md section 1).
    config.update(
        attention_head_dim=32,
        decoder_block_out_channels=[128, 256, 512, 1024],
        decoder_layers_per_block=[3, 3, 3, 3],
    )
    with torch.device("meta"):
        dcae = DcaeDecoder(config)
    params = sum(p.numel() for p in dcae.parameters())
    assert 78e6 < params < 80e6  # "decoder 79.1M" in the parameter table
    latents = torch.empty(1, 8, 16, 3, device="meta")
    assert tuple(dcae(latents).shape) == (1, 2, 128, 24)


def test_bfloat16_decode_stays_close_to_float32(golden):
    ref = golden.tensors("unit_music_dcae_decode")
    bf16 = AudioDecoder.from_checkpoint(golden.checkpoint, dtype=torch.bfloat16)
    out = bf16.decode(ref["in_latent"])
    assert out["wav_44k"].dtype == torch.float32
    # bf16 has 8 mantissa bits: the fixture tolerances do not apply, but the track must be the same one.
    assert (out["wav_44k"][0] - ref["out_wav_44k"]).abs().max() < 0.05
    assert torch.corrcoef(torch.stack([out["wav_44k"][0].flatten(), ref["out_wav_44k"].flatten()]))[0, 1] > 0.99


def _copy_checkpoint(golden, tmp_path):
    target = tmp_path / "checkpoint"
    for folder in ("music_dcae_f8c8", "music_vocoder"):
        shutil.copytree(golden.checkpoint / folder, target / folder)
        for f in (target / folder).iterdir():
            f.chmod(0o644)
    return target


def test_missing_component_folder_is_a_load_error_naming_it(golden, tmp_path):
    checkpoint = _copy_checkpoint(golden, tmp_path)
    shutil.rmtree(checkpoint / "music_vocoder")
    with pytest.raises(ModelLoadFailed, match="music_vocoder") as err:
        AudioDecoder.from_checkpoint(checkpoint)
    assert "LofiSetup ace-step" in err.value.hint


def test_corrupt_dcae_weights_are_a_load_error(golden, tmp_path):
    checkpoint = _copy_checkpoint(golden, tmp_path)
    weights = checkpoint / "music_dcae_f8c8" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ModelLoadFailed, match="music_dcae_f8c8") as err:
        AudioDecoder.from_checkpoint(checkpoint)
    assert "LofiSetup ace-step" in err.value.hint


def test_decoder_weights_missing_from_the_file_are_a_load_error(golden, tmp_path):
    from safetensors.torch import load_file, save_file

    checkpoint = _copy_checkpoint(golden, tmp_path)
    weights = checkpoint / "music_dcae_f8c8" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    del state["decoder.conv_out.weight"]
    save_file(state, str(weights))
    with pytest.raises(ModelLoadFailed, match="decoder.*missing|missing.*conv_out"):
        AudioDecoder.from_checkpoint(checkpoint)
