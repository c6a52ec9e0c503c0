""":checkhealth lofi in a real Neovim against the real daemon."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from nvim_child import DAEMON_CMD


def health_report(nvim) -> str:
    nvim.cmd("checkhealth lofi")
    nvim.wait("return vim.bo.filetype == 'checkhealth' and vim.api.nvim_buf_line_count(0) > 10", 120, "the report")
    return "\n".join(nvim.nvim.current.buffer[:])


def test_checkhealth_reports_neovim_daemon_python_torch_backends_disk_and_player(nvim):
    report = health_report(nvim)
    version = nvim.lua("local v = vim.version() return string.format('%d.%d.%d', v.major, v.minor, v.patch)")
    assert f"OK Neovim {version}" in report
    assert f"OK daemon command: {' '.join(DAEMON_CMD)} (from daemon_cmd)" in report
    assert re.search(r"OK Python 3\.\d+\.\d+", report)
    assert re.search(r"OK lofi_daemon \S+, protocol 1", report)
    assert re.search(r"OK daemon answers: version \S+, protocol 1", report)
    # torch and the device the daemon would choose (this machine: CPU)
    assert re.search(r"(OK torch \S+; devices: .*CPU)|(WARNING torch is not installed)", report), report
    assert re.search(r"procedural: (ready|installed) \[default\]", report)
    assert "musicgen: not installed" in report and ":LofiSetup musicgen" in report
    assert "ace_step: not installed, 8.3 GB" in report and ":LofiSetup ace-step" in report
    assert ":LofiInstall models" not in report  # this venv has the model libraries
    cache = nvim.tmp / "cache"
    assert re.search(rf"cache {re.escape(str(cache))}: [\d.]+ (GB|MB) free", report)
    assert "OK player.sink = capture " in report
    assert "ERROR" not in report, report


def write_executable(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_checkhealth_names_the_missing_daemon_and_player(uninstalled_nvim, tmp_path):
    bare_nvim = uninstalled_nvim
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    bare_nvim.lua("vim.env.PATH = ...", str(empty))
    report = health_report(bare_nvim)
    assert "ERROR lofi-daemon not found" in report
    assert ":LofiInstall" in report
    assert "WARNING no pw-cat, paplay, aplay, mpv or ffplay on PATH" in report


def test_checkhealth_shows_the_player_found_on_path(nvim, tmp_path):
    bin_dir = tmp_path / "players"
    write_executable(bin_dir / "paplay")
    write_executable(bin_dir / "aplay")
    nvim.setup(daemon_cmd=DAEMON_CMD, log_file=str(nvim.daemon_log))  # no player.sink: the daemon picks
    nvim.lua("vim.env.PATH = ...", str(bin_dir))
    report = health_report(nvim)
    assert "OK audio outputs on PATH: paplay, aplay" in report


def test_checkhealth_on_a_neovim_without_vim_health_says_too_old_instead_of_crashing(bare_nvim):
    # Neovim 0.8 has no vim.health: its :checkhealth calls check() with require("health")
    # offering report_start/report_error. This Neovim plays that one (0.8.3).
    result = bare_nvim.lua("""
        local reported = {}
        vim.health = nil
        local mt = getmetatable(vim)  -- vim.* submodules load on first use: not this one
        local index = mt.__index
        mt.__index = function(t, k) if k == 'health' then return nil end return index(t, k) end
        package.loaded.health = {
          report_start = function(name) table.insert(reported, 'start ' .. name) end,
          report_error = function(msg) table.insert(reported, 'error ' .. msg) end,
          report_ok = function(msg) table.insert(reported, 'ok ' .. msg) end,
        }
        vim.version = function() return { major = 0, minor = 8, patch = 3 } end
        local has = vim.fn.has
        vim.fn.has = function(f) if f:match('^nvim%-0%.1%d') or f == 'nvim-0.9' then return 0 end return has(f) end
        local ok, err = pcall(require('lofi.health').check)
        return { ok = ok, err = err and tostring(err) or nil, reported = reported }
    """)
    assert result["ok"], result
    assert result["reported"] == ["start lofi.nvim: Neovim",
                                  "error Neovim 0.8.3 is too old: lofi.nvim needs Neovim 0.10 or newer"]
