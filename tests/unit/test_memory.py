"""Reading the daemon's memory, the idle-unload settings, and the idle timer's policy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from lofi_daemon.idle_unload import IdleUnloader
from lofi_daemon.memory import rss_bytes, tensor_bytes
from lofi_daemon.settings import Preferences, Settings


def test_rss_is_read_from_proc_and_none_for_a_process_that_is_gone():
    assert rss_bytes() > 10 * 2**20  # this interpreter with pytest loaded
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert rss_bytes(child.pid) is None


def test_tensor_bytes_count_each_storage_once_so_tied_weights_are_not_doubled():
    import torch

    embed = torch.nn.Embedding(1000, 16)
    head = torch.nn.Linear(16, 1000, bias=False)
    head.weight = embed.weight  # tied, as language models tie input and output embeddings
    norm = torch.nn.BatchNorm1d(16)  # buffers count too
    model = torch.nn.ModuleDict({"embed": embed, "head": head, "norm": norm})
    buffers = sum(b.numel() * b.element_size() for b in norm.buffers())
    assert tensor_bytes([model]) == 1000 * 16 * 4 + 2 * 16 * 4 + buffers
    assert tensor_bytes([model, embed]) == tensor_bytes([model])
    assert tensor_bytes(["not a module"]) == 0


def _settings(tmp_path, config: dict | None = None, **env: str) -> Settings:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    if config is not None:
        (cfg / "config.json").write_text(json.dumps(config))
    return Settings.load(env={"LOFI_CACHE_DIR": str(tmp_path / "c"), "LOFI_CONFIG_DIR": str(cfg), **env})


def test_idle_unload_sec_defaults_to_300_comes_from_config_json_and_the_env_wins(tmp_path):
    assert _settings(tmp_path).idle_unload_sec == 300
    assert _settings(tmp_path, {"idle_unload_sec": 0}).idle_unload_sec == 0
    assert _settings(tmp_path, {"idle_unload_sec": 45}, LOFI_IDLE_UNLOAD_SEC="1.5").idle_unload_sec == 1.5


@pytest.mark.parametrize("bad", ["-1", "soon", "nan", "inf"])
def test_a_bad_idle_unload_env_value_is_named_and_ignored(tmp_path, bad):
    s = _settings(tmp_path, {"idle_unload_sec": 60}, LOFI_IDLE_UNLOAD_SEC=bad)
    assert s.idle_unload_sec == 60
    assert any("LOFI_IDLE_UNLOAD_SEC" in p and repr(bad) in p for p in s.problems), s.problems


@pytest.mark.parametrize("bad", [-5, "300", True, None])
def test_a_bad_idle_unload_config_value_falls_back_to_the_default_and_is_named(bad):
    problems: list[str] = []
    assert Preferences.from_dict({"idle_unload_sec": bad}, problems).idle_unload_sec == 300
    assert any("idle_unload_sec" in p for p in problems), problems


def test_a_bad_memory_limit_is_named_at_start_and_not_applied(tmp_path, monkeypatch):
    from lofi_daemon.device import free_memory_bytes

    s = _settings(tmp_path, LOFI_MEMORY_LIMIT_BYTES="lots")
    assert any("LOFI_MEMORY_LIMIT_BYTES" in p for p in s.problems), s.problems
    monkeypatch.setenv("LOFI_MEMORY_LIMIT_BYTES", "lots")
    assert free_memory_bytes("cpu") > 2**20
    monkeypatch.setenv("LOFI_MEMORY_LIMIT_BYTES", str(2**20))
    assert free_memory_bytes("cpu") == 2**20


class Model:
    """What the unloader asks about: a loaded backend and whether something still needs it."""

    def __init__(self) -> None:
        self.loaded: str | None = "musicgen"
        self.needed: str | None = None
        self.unloads = 0
        self.gone = asyncio.Event()

    async def unload(self) -> None:
        self.unloads += 1
        self.loaded = None
        self.gone.set()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_the_timer_unloads_a_model_nothing_needs_and_waits_while_something_does():
    async def scenario():
        model = Model()
        model.needed = "the radio's next track needs it"
        unloader = IdleUnloader(0.05, loaded=lambda: model.loaded, needed_by=lambda name: model.needed,
                                unload=model.unload)
        unloader.start()
        unloader.touch()
        await asyncio.sleep(0.3)  # several idle periods pass: each check finds it needed
        assert model.unloads == 0
        model.needed = None
        await model.gone.wait()
        unloader.touch()  # nothing loaded: a later check does nothing
        await asyncio.sleep(0.2)
        unloader.close()
        return model.unloads

    assert run(scenario()) == 1


def test_zero_seconds_means_never():
    async def scenario():
        model = Model()
        unloader = IdleUnloader(0, loaded=lambda: model.loaded, needed_by=lambda name: None, unload=model.unload)
        unloader.start()
        unloader.touch()
        await asyncio.sleep(0.2)
        return unloader.enabled, model.unloads

    assert run(scenario()) == (False, 0)


def test_a_failing_unload_is_logged_and_the_timer_lives_on(caplog):
    async def scenario():
        model = Model()
        attempts = asyncio.Queue()

        async def failing() -> None:
            attempts.put_nowait(1)
            raise RuntimeError("boom")

        unloader = IdleUnloader(0.05, loaded=lambda: model.loaded, needed_by=lambda name: None, unload=failing)
        unloader.start()
        unloader.touch()
        await attempts.get()
        await asyncio.sleep(0)  # let the task finish and log
        unloader.touch()  # the next activity arms it again
        await attempts.get()
        unloader.close()

    run(scenario())
    assert "idle unload failed" in caplog.text
