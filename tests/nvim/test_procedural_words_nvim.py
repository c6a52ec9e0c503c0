"""Neovim's "ready" message says which prompt words the procedural backend understood."""

from __future__ import annotations


def test_the_ready_message_names_understood_and_ignored_words(nvim):
    nvim.cmd("LofiGenerate chill rain, orchestral bagpipes 5")
    done = nvim.wait_done()
    assert done[0]["status"] == "complete"
    ready = [m for m in nvim.messages() if "ready" in m]
    assert ready and "understood: chill, rain, orchestral · ignored: bagpipes ·" in ready[-1], ready
