""":qa while a track is generating is refused (the lofi://generating buffer says why) instead of silently
stopping it; :qa! still quits, and once the track is done :qa quits as usual."""

from __future__ import annotations

import pynvim
import pytest
from nvim_child import wait_gone


def test_qa_during_a_generation_is_refused_with_a_reason_until_the_track_is_done(nvim):
    nvim.lua("require('lofi').generate({ prompt = 'guarded', duration = 30 })")
    nvim.wait("return require('lofi').status().current ~= nil", 30, "the track to start")
    with pytest.raises(pynvim.NvimError) as refused:
        nvim.nvim.command("qa")
    # Neovim refuses (E37: unsaved work, the hidden lofi://generating buffer) and lofi says why.
    assert "No write since last change" in str(refused.value)
    assert nvim.messages()[-1] == "lofi: 1 track generating or queued: :LofiCancel, or :qa! to quit anyway"
    assert nvim.lua("return require('lofi').status().current ~= nil")  # still generating
    (done,) = nvim.wait_done(1, timeout=120)
    assert done["status"] == "complete"
    assert nvim.lua("return require('lofi.guard').active()") is False
    assert nvim.lua("return vim.fn.bufexists('lofi://generating')") == 0


def test_qa_bang_still_quits_and_stops_the_daemon(nvim):
    nvim.lua("require('lofi').generate({ prompt = 'forced', duration = 30 })")
    nvim.wait("return require('lofi').status().current ~= nil", 30, "the track to start")
    pid = nvim.lua("return require('lofi.daemon').pid()")
    nvim.quit()  # :qa!
    assert wait_gone(pid, 15)
