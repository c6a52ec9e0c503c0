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
    nvim.wait("return #T.messages() > 1", 15, "a message")
    assert nvim.messages() == ["lofi: procedural: connecting…", "lofi: procedural is already installed"]


def test_generating_on_an_uninstalled_backend_tells_to_run_setup(nvim):
    nvim.cmd("LofiGenerate rain 5 backend=ace-step")
    nvim.wait("return #T.messages() > 0", 15, "a message")
    (message,) = nvim.messages()
    assert ":LofiSetup ace-step" in message


@pytest.fixture
def core_only_nvim(bare_nvim, tmp_path):
    """The daemon of a core install: torch, transformers and diffusers are not importable."""
    site = tmp_path / "core-only"
    site.mkdir()
    # A package set to None in sys.modules is one Python cannot import or find.
    (site / "sitecustomize.py").write_text(
        "import sys\nfor name in ('torch', 'transformers', 'diffusers', 'torchaudio'):\n    sys.modules[name] = None\n")
    bare_nvim.setup(daemon_cmd=DAEMON_CMD, log_file=str(bare_nvim.daemon_log), autoplay=False,
                    daemon_env={"PYTHONPATH": str(site)}, progress={"done_ms": 60000})
    return bare_nvim


def test_without_the_model_libraries_advice_says_install_models_first(core_only_nvim):
    nvim = core_only_nvim
    nvim.cmd("LofiGenerate rain 5s backend=musicgen")
    nvim.wait("return #T.messages(vim.log.levels.WARN) > 0", 15, "the refusal")
    (refusal,) = nvim.messages(3)
    assert "First :LofiInstall models (the model libraries), then :LofiSetup musicgen." in refusal

    nvim.cmd("checkhealth lofi")
    nvim.wait("return vim.bo.filetype == 'checkhealth' and vim.api.nvim_buf_line_count(0) > 10", 120, "the report")
    report = "\n".join(nvim.nvim.current.buffer[:])
    assert "musicgen: not installed - needs torch, transformers: first :LofiInstall models, then :LofiSetup musicgen" in report
    assert "ace_step: not installed, 8.3 GB - needs torch, transformers, diffusers: first :LofiInstall models" in report


def test_setup_without_the_model_libraries_asks_before_downloading(core_only_nvim):
    nvim = core_only_nvim
    nvim.lua("table.insert(T.selects, 'Cancel')")
    nvim.cmd("LofiSetup musicgen")
    nvim.wait("return #T.asked > 0", 15, "the question")
    asked = nvim.lua("return T.asked[1]")
    assert asked["prompt"] == "lofi: musicgen needs torch, transformers, which are not installed"
    assert asked["labels"][0] == "Install the model libraries first (:LofiInstall models)"
    assert nvim.lua("return vim.tbl_isempty(require('lofi.jobs').downloads())")
    assert not any("downloading" in m for m in nvim.messages())


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:1", "http://lofi-offline.invalid"])
def test_setup_offline_says_connecting_at_once_then_cannot_reach_the_hub(bare_nvim, fake_player, endpoint):
    nvim = bare_nvim
    setup_child(nvim, fake_player, endpoint)  # refused, or a name that never resolves
    nvim.cmd("LofiSetup musicgen")
    assert nvim.messages() == ["lofi: musicgen: connecting…"]  # before any answer
    (done,) = nvim.wait_done(1, kind="download", timeout=60)
    assert done["status"] == "error"
    (error,) = nvim.messages(4)
    assert f"cannot reach the model hub at {endpoint} (offline?)" in error
    assert "Check the network connection (or HF_ENDPOINT), then run :LofiSetup musicgen again." in error
    assert "Errno" not in error


def test_setup_of_a_gated_model_says_its_licence_before_the_download_and_checkhealth_shows_it(bare_nvim, fake_player):
    nvim = bare_nvim
    hub = FakeHub([]).start()  # no model there: the download fails, after the licence was said
    try:
        setup_child(nvim, fake_player, hub.endpoint)
        nvim.cmd("LofiSetup stable-audio-3")
        (done,) = nvim.wait_done(1, kind="download", timeout=60)
    finally:
        hub.stop()
    assert done["status"] == "error"
    messages = nvim.messages()
    licence = [i for i, m in enumerate(messages) if m.startswith("lofi: stable_audio_3 licence: Stability AI Community License")]
    assert licence and "Gemma" in messages[licence[0]], messages
    errors = [i for i, m in enumerate(messages) if "stabilityai/stable-audio-3-small-music" in m and i != licence[0]]
    assert errors and licence[0] < errors[0], messages  # said before the download's answer

    nvim.cmd("checkhealth lofi")
    nvim.wait("return vim.bo.filetype == 'checkhealth' and vim.api.nvim_buf_line_count(0) > 10", 120, "the report")
    report = "\n".join(nvim.nvim.current.buffer[:])
    assert "stable_audio_3 licence: Stability AI Community License" in report
    assert "procedural licence" not in report  # no terms, no line
