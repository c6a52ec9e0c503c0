"""A diffusers-layout variant (the XL repos): set up from the fake hub, loaded as it is, guided when base."""

from __future__ import annotations

from acestep15_helpers import make_backend
from fakehub import FakeHub, FakeRepo
from model_helpers import FAST_RETRY, use_fake_hub
from tiny_acestep15 import folder_files, save_diffusers, tiny_pipeline

from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.base import GenerationRequest
from lofi_daemon.device import DevicePlan
from lofi_daemon.models.manifests import ace_step_15_manifest


class Steps:
    def __init__(self):
        self.updates = []

    def plan(self, phases):
        self.phases = dict(phases)

    def update(self, phase, current, total):
        self.updates.append((phase, current, total))


def test_the_xl_base_variant_downloads_its_diffusers_repo_and_generates_with_guidance(tmp_path, monkeypatch):
    base = save_diffusers(tiny_pipeline(turbo=False, seed=1), tmp_path / "tiny-base")
    repo = ace_step_15_manifest("xl-base").repo_id
    with FakeHub([FakeRepo(repo, folder_files(base))]) as hub:
        use_fake_hub(monkeypatch, hub.endpoint)
        backend = make_backend(tmp_path / "cache", ace_step_15_variant="xl-base")
        backend._store.download(backend.manifest, retry=FAST_RETRY)
        backend.finish_setup()  # nothing to convert
    assert backend.is_installed()
    params = {p.name: p.default for p in backend.capabilities().parameters}
    assert (params["inference_steps"], params["guidance_scale"]) == (32, 7.0)
    backend.load(DevicePlan(preference="cpu"))
    assert backend._pipe.is_turbo is False
    request = GenerationRequest(prompt="slow ambient pads", duration_sec=10.0, seed=2,
                                params={"inference_steps": 4, "cfg_interval_start": 0.0, "cfg_interval_end": 0.5})
    steps = Steps()
    guided = backend.generate(request, steps, CancelToken()).samples
    unguided = backend.generate(GenerationRequest(prompt="slow ambient pads", duration_sec=10.0, seed=2,
                                                  params={"inference_steps": 4, "guidance_scale": 1.0}),
                                Steps(), CancelToken()).samples
    assert guided.shape == (2, 250 * 1920)
    assert not (guided == unguided).all()  # APG changed the result
    assert [u for u in steps.updates if u[0] == "diffusion"][-1] == ("diffusion", 4, 4)
    assert backend.model_version.startswith(repo + "@") and backend.model_version.endswith(":xl-base")
    backend.unload()
