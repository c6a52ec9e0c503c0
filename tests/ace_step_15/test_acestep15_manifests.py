"""What setup downloads for each ACE-Step 1.5 variant, and that it is what loading reads."""

from __future__ import annotations

import json

import pytest

from lofi_daemon.errors import InvalidParams
from lofi_daemon.models.manifest import ModelManifest
from lofi_daemon.models.manifests import ace_step_15_manifest
from lofi_daemon.backends.ace_step_15.variants import VARIANTS, choose_variant


def test_the_turbo_manifest_names_every_file_of_the_upstream_layout_that_loading_reads(tiny_model):
    manifest = ace_step_15_manifest("turbo")
    assert (manifest.repo_id, manifest.backend) == ("ACE-Step/Ace-Step1.5", "ace_step_15")
    on_disk = {str(p.relative_to(tiny_model.original)) for p in tiny_model.original.rglob("*") if p.is_file()}
    candidates = {f for c in manifest.components for f in c.candidate_files}
    assert set(manifest.files) <= on_disk <= candidates
    assert [c.name for c in manifest.components] == ["dit", "vae", "text_encoder"]
    assert not any(f.startswith("acestep-5Hz-lm") for f in candidates)  # the planner LM is not needed


@pytest.mark.parametrize("variant", ["xl-turbo", "xl-base"])
def test_a_diffusers_layout_manifest_covers_what_save_pretrained_writes(variant, tiny_model):
    manifest = ace_step_15_manifest(variant)
    on_disk = {str(p.relative_to(tiny_model.diffusers)) for p in tiny_model.diffusers.rglob("*") if p.is_file()}
    candidates = {f for c in manifest.components for f in c.candidate_files}
    assert set(manifest.files) <= on_disk <= candidates
    assert manifest.repo_id == VARIANTS[variant].repo_id


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_follows_main_and_survives_the_trip_to_the_download_worker(variant):
    manifest = ace_step_15_manifest(variant)
    assert manifest.revision == "main"  # resolved and recorded at download time
    assert ModelManifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest


def test_turbo_variants_are_8_unguided_steps_and_base_is_guided():
    assert [(v.steps, v.guidance_scale, v.shift) for v in VARIANTS.values() if v.turbo] == [(8, 1.0, 3.0)] * 2
    assert VARIANTS["xl-base"].guidance_scale > 1.0 and VARIANTS["xl-base"].steps > 8


@pytest.mark.parametrize("name", [None, "", "turbo", " Turbo "])
def test_the_default_and_spelled_variants_are_accepted(name):
    assert choose_variant(name).key == "turbo"


@pytest.mark.parametrize("name", ["turbo-xxl", 3, ["turbo"]])
def test_an_unknown_variant_is_invalid_params_naming_the_choices(name):
    with pytest.raises(InvalidParams) as err:
        choose_variant(name)
    assert err.value.facts["choices"] == list(VARIANTS) and "ace_step_15_variant" in err.value.hint
    with pytest.raises(InvalidParams):
        ace_step_15_manifest(str(name))
