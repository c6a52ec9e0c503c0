"""The client against a scripted stand-in daemon: chunked answers over real pipes,
garbage lines, timeouts, and a protocol version that does not match."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTED = [sys.executable, str(Path(__file__).with_name("scripted_daemon.py"))]


def test_an_answer_arriving_in_small_chunks_after_a_garbage_line_is_decoded(bare_nvim):
    bare_nvim.setup(daemon_cmd=SCRIPTED, log_file=str(bare_nvim.daemon_log))
    answer = bare_nvim.call("echo", {"text": "♪ café — 日本語", "n": 3})
    assert answer == {"result": {"text": "♪ café — 日本語", "n": 3}}
    assert "ignored a line from the daemon (not JSON" in bare_nvim.daemon_log.read_text()


def test_a_request_without_answer_times_out_with_a_clear_error(bare_nvim):
    bare_nvim.setup(daemon_cmd=SCRIPTED, log_file=str(bare_nvim.daemon_log), request_timeout_ms=300)
    answer = bare_nvim.call("never")
    assert answer["err"]["code"] == "TIMEOUT"
    assert answer["err"]["message"] == "never got no answer within 0.3 s"
    assert bare_nvim.call("echo", {"still": "alive"})["result"] == {"still": "alive"}


def test_a_daemon_with_another_protocol_version_is_flagged_once(bare_nvim):
    bare_nvim.lua("vim.env.SCRIPTED_PROTOCOL = '99'")
    bare_nvim.setup(daemon_cmd=SCRIPTED, log_file=str(bare_nvim.daemon_log))
    bare_nvim.call("echo", {})
    bare_nvim.wait("return #T.messages() > 0", 10, "the warning")
    (warning,) = bare_nvim.messages(3)
    assert "daemon speaks protocol 99, this plugin speaks 1" in warning and ":LofiInstall" in warning
