""":LofiSetup against a fake Hugging Face hub on 127.0.0.1, and :LofiBackend switching."""

from __future__ import annotations

import pytest
from fakehub import FakeHub, FakeRepo
from nvim_child import DAEMON_CMD
from tiny_musicgen import tiny_musicgen_hub_files


@pytest.fixture(scope="module")
def tiny_musicgen_files(tmp_path_factory) -> dict[str, bytes]:
    """A tiny random MusicGen checkpoint, as the files of a hub repo."""
    return tiny_musicgen_hub_files(tmp_path_factory.mktemp("musicgen"))


@pytest.fixture
def musicgen_hub(tiny_musicgen_files):
    from lofi_daemon.models.manifests import MUSICGEN_REVISIONS

    repo = FakeRepo("facebook/musicgen-small", tiny_musicgen_files, commit=MUSICGEN_REVISIONS["facebook/musicgen-small"])
    hub = FakeHub([repo]).start()
    yield hub
    hub.stop()


def setup_child(nvim, fake_player, endpoint: str) -> None:
    # A user's environment has no HF_HUB_OFFLINE (the test environment sets it to 1).
    nvim.setup(daemon_cmd=DAEMON_CMD, log_file=str(nvim.daemon_log), autoplay=False,
               daemon_env={"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"}, progress={"done_ms": 60000})


def test_setup_downloads_with_per_component_progress_then_the_backend_switches(bare_nvim, fake_player, musicgen_hub):
    nvim = bare_nvim
    setup_child(nvim, fake_player, musicgen_hub.endpoint)
    nvim.cmd("LofiSetup musicgen")
    (done,) = nvim.wait_done(1, kind="download", timeout=60)
    assert done["status"] == "complete", nvim.messages()

    progress = [e for e in nvim.events() if e["name"] == "LofiProgress" and e["data"]["kind"] == "download"]
    assert {e["data"]["component"] for e in progress} == {"model", "processor"}
    overall = [e["data"]["overall_percent"] for e in progress]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(100)
    assert any(e["statusline"].startswith("♪ ↓ musicgen ") for e in progress)
    assert any("musicgen is installed" in m for m in nvim.messages())
    assert nvim.statusline() == "♪ installed"

    nvim.cmd("LofiBackend musicgen")
    nvim.wait("return #T.messages() >= 1 and T.messages()[#T.messages()]:find('backend:') ~= nil", 15, "the switch")
    assert nvim.messages()[-1] == "lofi: backend: musicgen (was procedural)"
    assert nvim.call("get_status")["result"]["backend"] == "musicgen"

    # Without a name: pick from the list, which shows each backend's state.
    nvim.lua("table.insert(T.selects, 'procedural')")
    nvim.cmd("LofiBackend")
    nvim.wait("return T.messages()[#T.messages()]:find('was musicgen') ~= nil", 15, "the switch back")
    labels = nvim.lua("return T.asked[#T.asked].labels")
    assert any(label.startswith("musicgen (installed") for label in labels), labels
    assert any(label.startswith("procedural (") for label in labels), labels
    assert nvim.call("get_status")["result"]["backend"] == "procedural"


def test_setup_from_a_hub_without_the_model_is_one_clear_error_with_a_hint(bare_nvim, fake_player):
    nvim = bare_nvim
    hub = FakeHub([]).start()  # answers 404 for every repo
    try:
        setup_child(nvim, fake_player, hub.endpoint)
        nvim.cmd("LofiSetup musicgen")
        (done,) = nvim.wait_done(1, kind="download", timeout=60)
    finally:
        hub.stop()
    assert done["status"] == "error"
    assert done["error"]["code"] == "DOWNLOAD_FAILED"
    errors = nvim.messages(4)
    assert len(errors) == 1, errors
    assert "facebook/musicgen-small" in errors[0]
    assert "HF_ENDPOINT" in errors[0]  # the daemon's hint: what to check
    assert nvim.statusline() == "♪ setup failed"


def test_switching_to_a_backend_that_is_not_installed_points_to_setup(nvim):
    nvim.cmd("LofiBackend musicgen")
    nvim.wait("return #T.messages() > 0", 15, "a message")
    (message,) = nvim.messages()
    assert "not installed" in message and ":LofiSetup musicgen" in message
    assert nvim.call("get_status")["result"]["backend"] == "procedural"


def test_setup_of_a_backend_without_weights_says_it_is_ready(nvim):
    nvim.cmd("LofiSetup procedural")
    nvim.wait("return #T.messages() > 0", 15, "a message")
    assert nvim.messages() == ["lofi: procedural is already installed"]


def test_generating_on_an_uninstalled_backend_tells_to_run_setup(nvim):
    nvim.cmd("LofiGenerate rain 5 backend=ace-step")
    nvim.wait("return #T.messages() > 0", 15, "a message")
    (message,) = nvim.messages()
    assert ":LofiSetup ace-step" in message
