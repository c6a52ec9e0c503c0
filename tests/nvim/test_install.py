"""Installing the daemon into the plugin's own venv: :LofiInstall, build.lua, and the
daemon lookup that prefers <plugin>/.venv. Runs on a copy of the plugin in a temp folder
(its .venv must not appear in the real checkout), with a stand-in Python that records its
arguments: Python and pip are the outside world here, the step orchestration is under test.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from nvim_child import REPO, fresh_plugin_copy, start_child, stop_child


def executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def plugin_copy(tmp_path) -> Path:
    root = fresh_plugin_copy(tmp_path / "lofi.nvim")
    shutil.copy(REPO / "build.lua", root / "build.lua")
    return root


@pytest.fixture
def fake_python(tmp_path) -> tuple[Path, Path]:
    """A 'python' that logs argv; `-m venv DIR` makes DIR/bin/python (itself) like venv does."""
    log = tmp_path / "python-calls.log"
    script = executable(tmp_path / "fake-python" / "python3", f"""#!/bin/sh
echo "$0 $*" >> "{log}"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ] && [ -n "$FAKE_PIP_FAILS" ]; then
  echo "Collecting torch"
  echo "ERROR: Could not find a version that satisfies the requirement torch (from versions: none)" >&2
  echo "ERROR: No matching distribution found for torch" >&2
  i=0; while [ $i -lt 30 ]; do echo "  noise line $i" >&2; i=$((i+1)); done
  echo "See above for output." >&2
  exit 1
fi
exit 0
""")
    return script, log


@pytest.fixture
def copy_nvim(nvim_bin, plugin_copy, tmp_path, child_env):
    child = start_child(nvim_bin, tmp_path, plugin_copy)
    yield child
    stop_child(child)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_lofi_install_creates_the_venv_then_installs_the_daemon_with_extras(copy_nvim, plugin_copy, fake_python):
    python, log = fake_python
    copy_nvim.setup(install={"python": str(python)})
    copy_nvim.cmd("LofiInstall models")
    copy_nvim.wait("return #T.messages() >= 3", 30, "the install to finish")
    venv = plugin_copy / ".venv"
    assert calls(log) == [
        f"{python} -m venv {venv}",
        f"{venv}/bin/python -m pip install --upgrade --disable-pip-version-check {plugin_copy}[models]",
    ]
    assert copy_nvim.messages() == [
        f"lofi: [1/2] create {venv}",
        "lofi: [2/2] install the daemon with models",
        f"lofi: installed: {venv}/bin/lofi-daemon",
    ]


def test_lofi_install_again_reuses_the_venv(copy_nvim, plugin_copy, fake_python):
    python, log = fake_python
    executable(plugin_copy / ".venv" / "bin" / "python", python.read_text())
    copy_nvim.setup(install={"python": str(python)})
    copy_nvim.cmd("LofiInstall")
    copy_nvim.wait("return #T.messages() >= 2", 30, "the install to finish")
    assert calls(log) == [f"{plugin_copy}/.venv/bin/python -m pip install --upgrade --disable-pip-version-check {plugin_copy}"]


def test_a_failing_pip_is_one_line_quoting_pips_errors_with_the_full_output_in_a_log(copy_nvim, fake_python, tmp_path):
    python, _ = fake_python
    copy_nvim.lua("vim.env.FAKE_PIP_FAILS = '1'")
    copy_nvim.setup(install={"python": str(python)})
    copy_nvim.cmd("LofiInstall models")
    copy_nvim.wait("return #T.messages(vim.log.levels.ERROR) > 0", 30, "the failure")
    (error,) = copy_nvim.messages(4)
    assert "\n" not in error
    assert "install the daemon with models failed (exit 1)" in error
    assert "ERROR: Could not find a version that satisfies the requirement torch" in error
    assert "ERROR: No matching distribution found for torch" in error
    assert "noise line" not in error and "See above" not in error
    log = tmp_path / "xdg" / "state" / "nvim" / "lofi-install.log"
    assert copy_nvim.lua("return require('lofi.install').log_file()") == str(log)
    assert f"The full output is in {log}" in error
    full = log.read_text()
    assert "noise line 29" in full and "Collecting torch" in full and "-m pip install" in full


def test_build_lua_runs_the_same_steps_headless(nvim_bin, plugin_copy, fake_python, child_env):
    python, log = fake_python
    env = {**child_env, "PATH": "/usr/bin:/bin", "LOFI_PYTHON": str(python), "LOFI_EXTRAS": "models"}
    result = subprocess.run([nvim_bin, "--headless", "--clean", "-l", str(plugin_copy / "build.lua")],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(calls(log)) == 2 and calls(log)[1].endswith(f"{plugin_copy}[models]")
    assert f"done: {plugin_copy}/.venv/bin/lofi-daemon" in result.stderr

    failing = subprocess.run([nvim_bin, "--headless", "--clean", "-l", str(plugin_copy / "build.lua")],
                             capture_output=True, text=True, env={**env, "FAKE_PIP_FAILS": "1"}, timeout=60)
    assert failing.returncode != 0
    assert "No matching distribution found for torch" in failing.stderr


LAZY_BUILD = Path(__file__).with_name("lazy_build.lua")


@pytest.mark.parametrize("form", ["table", "function"])
def test_lazy_build_uses_the_install_options_of_the_lazy_spec(nvim_bin, plugin_copy, fake_python, child_env, form):
    # The documented spec: { build = "build.lua", opts = { install = { python = ..., extras = { "models" } } } }
    python, log = fake_python
    opts = json.dumps({"install": {"python": str(python), "extras": ["models"]}})
    result = subprocess.run([nvim_bin, "--headless", "--clean", "-l", str(LAZY_BUILD), str(plugin_copy), opts, form],
                            capture_output=True, text=True, env={**child_env, "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    venv = plugin_copy / ".venv"
    assert calls(log) == [
        f"{python} -m venv {venv}",
        f"{venv}/bin/python -m pip install --upgrade --disable-pip-version-check {plugin_copy}[models]",
    ]
    assert "LOG install options from the lazy.nvim spec (opts.install)" in result.stdout
    assert f"LOG done: {venv}/bin/lofi-daemon" in result.stdout


def test_lazy_build_refuses_a_bad_install_option_by_name(nvim_bin, plugin_copy, fake_python, child_env):
    opts = json.dumps({"install": {"extras": "models"}})
    result = subprocess.run([nvim_bin, "--headless", "--clean", "-l", str(LAZY_BUILD), str(plugin_copy), opts],
                            capture_output=True, text=True, env={**child_env, "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode != 0
    assert "install.extras must be a list of strings" in result.stdout


def test_the_daemon_in_the_plugin_venv_is_found_first(copy_nvim, plugin_copy):
    # An installed venv: its lofi-daemon runs the real daemon.
    executable(plugin_copy / ".venv" / "bin" / "lofi-daemon", f"#!/bin/sh\nexec {sys.executable} -m lofi_daemon \"$@\"\n")
    resolved = copy_nvim.lua("return require('lofi.daemon').resolve()")
    assert resolved == {"cmd": [str(plugin_copy / ".venv" / "bin" / "lofi-daemon")], "source": "plugin venv"}
    copy_nvim.setup(autoplay=False)
    copy_nvim.cmd("LofiGenerate from the plugin venv 5")
    assert copy_nvim.wait_done()[0]["status"] == "complete"


def test_help_tags_build_and_every_command_has_help(nvim_bin, tmp_path):
    doc = tmp_path / "doc"
    shutil.copytree(REPO / "doc", doc)
    result = subprocess.run([nvim_bin, "--headless", "--clean", "-c", f"helptags {doc}", "-c", "qa!"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "E154" not in result.stderr, result.stderr  # no duplicate tags
    tags = {line.split("\t")[0] for line in (doc / "tags").read_text().splitlines()}
    plugin_commands = set(re.findall(r"^  (Lofi\w+) = ", (REPO / "plugin" / "lofi.lua").read_text(), re.M))
    assert plugin_commands and {f":{c}" for c in plugin_commands} <= tags
    assert {"lofi", "lofi-config", "lofi-api", "lofi-events", "lofi-statusline", "lofi-troubleshooting",
            "LofiProgress", "LofiDone"} <= tags


@pytest.fixture
def busy_copy_nvim(copy_nvim, fake_python):
    python, _ = fake_python
    copy_nvim.setup(daemon_cmd=[sys.executable, "-m", "lofi_daemon"], autoplay=False, install={"python": str(python)},
                    progress={"done_ms": 60000})
    copy_nvim.lua("require('lofi').generate({ prompt = 'busy while installing', duration = 60 })")
    copy_nvim.wait("return require('lofi').status().current ~= nil", 30, "the track to start")
    return copy_nvim


def test_install_during_a_generation_asks_and_can_wait_for_the_track(busy_copy_nvim, fake_python):
    nvim = busy_copy_nvim
    _, log = fake_python
    pid = nvim.lua("return require('lofi.daemon').pid()")
    nvim.lua("table.insert(T.selects, 'after these tracks')")
    nvim.cmd("LofiInstall")
    asked = nvim.lua("return T.asked[#T.asked]")
    assert asked["prompt"] == "lofi: 1 track is generating or queued; installing restarts the daemon"
    (done,) = nvim.wait_done(1, timeout=120)
    assert done["status"] == "complete", nvim.messages()
    assert len(calls(log)) == 2
    assert any(m.endswith("/bin/lofi-daemon; the daemon restarts after 1 track") for m in nvim.messages())
    assert not any("cancelled" in m for m in nvim.messages())
    # The daemon was restarted only after the track: the next request starts a new one.
    nvim.wait("return not require('lofi.daemon').is_running()", 15, "the old daemon to stop")
    assert nvim.call("ping")["result"]["status"] == "ok"
    assert nvim.lua("return require('lofi.daemon').pid()") != pid


def test_install_during_a_generation_can_be_declined(busy_copy_nvim, fake_python):
    nvim = busy_copy_nvim
    _, log = fake_python
    nvim.lua("table.insert(T.selects, \"Don't install\")")
    nvim.cmd("LofiInstall")
    assert nvim.messages()[-1] == "lofi: not installing"
    assert calls(log) == []
    assert nvim.lua("return require('lofi').status().current ~= nil")
