"""The queue as the user sees it: QUEUE_FULL for the 6th waiting request, :LofiCancel."""

from __future__ import annotations

import re


def test_sixth_waiting_request_shows_queue_full_with_the_wait(nvim):
    # One runs, five wait, the seventh is the sixth waiting one: refused.
    nvim.cmd("LofiGenerate queue test 1 60")
    nvim.wait("return require('lofi').status().current ~= nil", 15, "the first track to start")
    nvim.lua("""
        for i = 2, 7 do
          vim.cmd('LofiGenerate queue test ' .. i .. ' 60')
        end
    """)
    nvim.wait("return #T.messages(vim.log.levels.WARN) > 0", 20, "the QUEUE_FULL warning")
    nvim.remember_daemon()
    warnings = nvim.messages(3)
    assert len(warnings) == 1, warnings
    assert "queue is full" in warnings[0]
    assert re.search(r"(Wait about \d+ s)|(a slot frees in about \d+:\d\d)", warnings[0])  # the wait
    assert "cancel" in warnings[0]  # the daemon's hint
    assert nvim.lua("return #require('lofi.jobs').active()") == 6
    status = nvim.call("get_status")["result"]
    assert len(status["queue"]) == 5 and status["current"] is not None


def test_cancel_stops_the_running_track_and_the_daemon_keeps_working(nvim):
    nvim.cmd("LofiGenerate a very long track 240")
    nvim.wait("return require('lofi').status().current ~= nil and require('lofi').status().current.percent > 0",
              30, "the track to make progress")
    nvim.cmd("LofiCancel")
    (done,) = nvim.wait_done(1, timeout=15)
    assert done["status"] == "cancelled"
    assert nvim.statusline() == "♪ cancelled"
    assert any("cancelled" in m for m in nvim.messages())
    assert nvim.call("list_tracks")["result"]["tracks"] == []
    # and the next one goes through
    nvim.cmd("LofiGenerate after the cancel 5")
    assert nvim.wait_done(2)[1]["status"] == "complete"


def test_cancel_by_id_removes_a_waiting_track_only(nvim):
    nvim.lua("""
        T.ids = {}
        for i = 1, 2 do
          require('lofi').generate({ prompt = 'cancel me ' .. i, duration = 60 }, nil)
        end
    """)
    nvim.wait("return #require('lofi.jobs').active() == 2", 15, "two jobs")
    waiting = nvim.lua("return require('lofi.jobs').active()[2].track_id")
    assert waiting in nvim.lua("return vim.fn.getcompletion('LofiCancel ', 'cmdline')")
    nvim.cmd(f"LofiCancel {waiting}")
    nvim.wait("return #T.done() >= 1", 15, "the waiting job to end")
    first_done = nvim.lua("return T.done()[1]")["data"]
    assert first_done == {**first_done, "track_id": waiting, "status": "cancelled"}
    assert nvim.lua("return require('lofi.jobs').active()[1].state") == "generating"


def test_cancel_with_nothing_running_says_so(nvim):
    nvim.cmd("LofiCancel")
    (message,) = nvim.messages()
    assert "nothing is generating" in message
