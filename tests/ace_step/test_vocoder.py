"""The mel vocoder (ConvNeXt backbone + HiFi-GAN head) loaded from the official layout."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lofi_daemon.backends.ace_step.vocoder import MusicVocoder, VocoderConfig
from lofi_daemon.errors import ModelLoadFailed


@pytest.fixture
def vocoder(golden):
    return MusicVocoder.from_pretrained(golden.checkpoint / "music_vocoder")


def test_vocoder_matches_the_official_decode(golden, vocoder):
    ref = golden.tensors("unit_vocoder")
    with torch.no_grad():
        out = vocoder.decode(ref["in_mel"])
    golden.check("unit_vocoder", "out_wav", out, ref["out_wav"])


def test_weight_norm_is_folded_and_mel_analysis_buffers_are_not_loaded(golden, vocoder):
    names = set(vocoder.state_dict())
    assert not any(n.endswith(("weight_g", "weight_v")) for n in names)
    assert not any(n.startswith("mel_transform") for n in names)
    from safetensors import safe_open

    with safe_open(str(golden.checkpoint / "music_vocoder" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        g = f.get_tensor("head.conv_pre.weight_g")
        v = f.get_tensor("head.conv_pre.weight_v")
    folded = vocoder.head.conv_pre.weight
    # every output channel has the stored magnitude and the stored direction
    assert torch.allclose(folded.flatten(1).norm(dim=1), g.flatten(), rtol=1e-5)
    assert torch.allclose(folded / folded.flatten(1).norm(dim=1)[:, None, None], v / v.flatten(1).norm(dim=1)[:, None, None], atol=1e-6)


def test_each_output_sample_depends_only_on_mel_frames_within_the_receptive_field(vocoder):
    """What makes windowed vocoding exact: a change at one mel frame stays within
    ``receptive_field_frames()`` frames' worth of samples on either side."""
    reach = vocoder.receptive_field_frames()
    hop = vocoder.hop_length
    torch.manual_seed(0)
    mel = torch.rand(1, 128, 6 * reach) * 14 - 11
    poked = mel.clone()
    frame = 3 * reach
    poked[..., frame] += 4.0
    with torch.no_grad():
        diff = (vocoder(poked) - vocoder(mel)).abs()[0, 0]
    changed = torch.nonzero(diff > 0).flatten()
    assert changed.numel() > 0
    assert changed.min() >= (frame - reach) * hop and changed.max() < (frame + 1 + reach) * hop
    # and the bound is not wildly loose: the influence reaches past half of it
    assert changed.max() - changed.min() > reach * hop


def test_full_size_vocoder_builds_from_the_real_config_on_the_meta_device():
    with torch.device("meta"):
        model = MusicVocoder(VocoderConfig())
    x = torch.empty(1, 128, 10, device="meta")
    assert tuple(model(x).shape) == (1, 1, 5120)
    assert 0 < model.receptive_field_frames() < 200


def _copy_vocoder(golden, tmp_path):
    target = tmp_path / "music_vocoder"
    shutil.copytree(golden.checkpoint / "music_vocoder", target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


def test_truncated_weights_fail_with_load_error_and_setup_hint(golden, tmp_path):
    folder = _copy_vocoder(golden, tmp_path)
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadFailed) as err:
        MusicVocoder.from_pretrained(folder)
    assert "LofiSetup ace-step" in err.value.hint


def test_missing_weights_or_config_fail_with_load_error(golden, tmp_path):
    folder = _copy_vocoder(golden, tmp_path)
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelLoadFailed) as err:
        MusicVocoder.from_pretrained(folder)
    assert "diffusion_pytorch_model.safetensors" in err.value.message and "LofiSetup ace-step" in err.value.hint
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadFailed) as err:
        MusicVocoder.from_pretrained(folder)
    assert err.value.facts["path"] == str(folder / "config.json")


def test_config_that_does_not_fit_the_weights_is_a_load_error(golden, tmp_path):
    folder = _copy_vocoder(golden, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["dims"] = [16, 32]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadFailed, match="do not match"):
        MusicVocoder.from_pretrained(folder)
    config["upsample_rates"] = [8, 8, 4]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadFailed, match="hop_length"):
        MusicVocoder.from_pretrained(folder)
