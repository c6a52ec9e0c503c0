"""Fixtures for the ACE-Step 1.5 tests: one tiny random model per session, in both layouts."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tiny_acestep15 beside the tests
sys.path.insert(0, str(Path(__file__).parents[1] / "models"))  # model_helpers: the fake-hub client setup

from tiny_acestep15 import save_diffusers, save_original, tiny_pipeline  # noqa: E402


@dataclass(frozen=True)
class TinyModel:
    diffusers: Path  # save_pretrained of the whole pipeline
    original: Path  # the upstream ACE-Step/Ace-Step1.5 layout, same weights


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> TinyModel:
    """The real-rate tiny model (48 kHz, 25 latents/s) saved both ways."""
    root = tmp_path_factory.mktemp("ace15-tiny")
    pipe = tiny_pipeline(rate="real")
    return TinyModel(save_diffusers(pipe, root / "diffusers"), save_original(pipe, root / "original"))


@pytest.fixture(autouse=True)
def _one_thread():
    """CI shares 2 cores between test processes; extra OpenMP threads only wait for them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def hub_files(tiny_model) -> dict[str, bytes]:
    """What the fake hub serves as ``ACE-Step/Ace-Step1.5``: the tiny model, upstream layout."""
    from tiny_acestep15 import folder_files

    return folder_files(tiny_model.original)


@pytest.fixture(scope="session")
def installed_cache(tmp_path_factory, hub_files) -> Path:
    """A cache dir where setup already ran (download from the fake hub + conversion)."""
    from fakehub import FakeHub, FakeRepo
    from model_helpers import FAST_RETRY, use_fake_hub

    from lofi_daemon.backends.ace_step_15.backend import AceStep15Backend
    from lofi_daemon.models.manifests import ACE_STEP_15_MAIN_REPO
    from lofi_daemon.models.store import ModelStore
    from lofi_daemon.settings import Settings

    root = tmp_path_factory.mktemp("ace15-installed")
    hub = FakeHub([FakeRepo(ACE_STEP_15_MAIN_REPO, hub_files)]).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            use_fake_hub(mp, hub.endpoint)
            settings = Settings(cache_dir=root / "cache", config_dir=root / "cache" / "config")
            backend = AceStep15Backend(settings, ModelStore(settings.models_dir))
            backend._store.download(backend.manifest, retry=FAST_RETRY)
            backend.finish_setup()
    finally:
        hub.stop()
    assert backend.is_installed()
    return root / "cache"
