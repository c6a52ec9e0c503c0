"""The daemon as a process: framing, hostile input, errors, start-up and exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from daemon_client import Daemon


@pytest.fixture
def daemon(cache_dir):
    with Daemon.start(cache_dir) as d:
        yield d


def test_ping_answers_with_version_and_protocol(daemon):
    reply = daemon.call("ping")
    assert reply["result"]["status"] == "ok"
    assert reply["result"]["protocol"] == 1
    assert reply["result"]["version"]


@pytest.mark.parametrize("preferred", ["procedural", "musicgen", "ace_step"])
def test_start_up_imports_no_heavy_libraries(cache_dir, preferred):
    # This is what keeps spawn-to-first-ping fast (bench/bench_daemon.py measures it: ~0.2 s).
    config = cache_dir.parent / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps({"default_backend": preferred}))
    code = (
        "import sys, asyncio\n"
        "import lofi_daemon.__main__\n"
        "from lofi_daemon.app import App\n"
        "from lofi_daemon.settings import Settings\n"
        "from lofi_daemon.rpc import params as P\n"
        "async def main():\n"
        "    app = App(Settings.load(), lambda *a: None)\n"
        "    await app.get_backends(P.NoParams())\n"
        "    await app.get_status(P.NoParams())\n"
        "asyncio.run(main())\n"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'huggingface_hub') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout.strip()}"


HOSTILE_LINES = [
    b"garbage",
    b"{",
    b'{"jsonrpc":"2.0","id":1,"method":"ping"',  # truncated
    b"[]",
    b"[1,2,3]",
    b"42",
    b'"just a string"',
    b"null",
    b'{"jsonrpc":"1.0","id":2,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":3}',
    b'{"jsonrpc":"2.0","id":4,"method":12}',
    b'{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}',
    b'{"jsonrpc":"2.0","id":5,"method":"ping","extra":true}',
    b'{"jsonrpc":"2.0","id":6,"method":"generate","params":[1,2]}',
    b'{"jsonrpc":"2.0","id":7,"method":"generate","params":"x"}',
    b'{"jsonrpc":"2.0","id":8,"method":"generate","params":{"prompt":5,"duration_sec":10}}',
    b'{"jsonrpc":"2.0","id":9,"method":"generate","params":{"prompt":"x","duration_sec":"10"}}',
    b'{"jsonrpc":"2.0","id":10,"method":"generate","params":{"prompt":"x","duration_sec":10,"sed":1}}',
    b'{"jsonrpc":"2.0","id":11,"method":"generate","params":{"prompt":"x","duration_sec":NaN}}',
    b'{"jsonrpc":"2.0","id":12,"method":"no_such_method"}',
    b'{"jsonrpc":"2.0","id":13,"method":"cancel","params":{"track_id":"nope"}}',
    b'\xff\xfe{"jsonrpc":"2.0","id":14,"method":"ping"}',  # invalid UTF-8
    b'{"jsonrpc":"2.0","id":15,"method":"generate","params":{"prompt":"\xc3","duration_sec":10}}',
    b'{"jsonrpc":"2.0","id":16,"method":"generate","params":{"prompt":"x","duration_sec":10,"seed":-1}}',
    b'{"jsonrpc":"2.0","id":17,"method":"generate","params":{"prompt":"","duration_sec":10}}',
    b'{"jsonrpc":"2.0","id":18,"method":"generate","params":{"prompt":"x","duration_sec":1e308}}',
    b'{"jsonrpc":"2.0","id":19,"method":"set_backend","params":{"backend":"nope"}}',
    b'{"jsonrpc":"2.0","id":20,"method":"delete_track","params":{"track_id":"nope"}}',
    b"[" * 200_000,  # nesting deep enough to exhaust the JSON parser's recursion
    b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}',  # an id that parses as inf
    b'{"jsonrpc":"2.0","id":21,"method":"generate","params":{"prompt":"x","duration_sec":1e400}}',
]


def test_hostile_input_gets_error_replies_and_the_daemon_reads_on(daemon):
    for line in HOSTILE_LINES:
        daemon.send_raw(line + b"\n")
    daemon.send_raw(b'{"jsonrpc":"2.0","id":"after","method":"ping"}\n')
    reply = daemon.wait_reply("after", timeout=20)
    assert reply["result"]["status"] == "ok"
    errors = [m for m in daemon.messages if isinstance(m, dict) and "error" in m]
    batch_replies = [m for m in daemon.messages if isinstance(m, list)]
    # every hostile line got exactly one reply ([1,2,3] a batch reply with 3 errors), none crashed it
    assert len(errors) + len(batch_replies) == len(HOSTILE_LINES)
    assert [len(b) for b in batch_replies] == [3]
    assert all(r["error"]["code"] == -32600 for r in batch_replies[0])
    for err in errors:
        assert err["jsonrpc"] == "2.0"
        assert isinstance(err["error"]["code"], int)
        assert err["error"]["data"]["error_code"]
        assert err["error"]["data"]["hint"]
    codes = {m.get("id"): m["error"]["code"] for m in errors}
    assert codes[2] == -32600 and codes[3] == -32600 and codes[5] == -32600
    assert codes[6] == codes[7] == codes[8] == codes[9] == codes[10] == -32602
    assert codes[12] == -32601
    assert codes[13] == -32006  # TRACK_NOT_FOUND
    assert codes[16] == codes[17] == -32602
    assert codes[18] == -32004  # INVALID_DURATION
    assert codes[19] == -32005  # INVALID_BACKEND
    assert codes[20] == -32006
    parse_errors = [m for m in errors if m["error"]["code"] == -32700]
    assert len(parse_errors) >= 6  # garbage, "{", truncated, invalid UTF-8 (x2), NaN, deep nesting
    assert codes[21] == -32004  # an infinite duration is out of range
    assert any(m.get("id") is None and m["error"]["code"] == -32600 for m in errors)  # the inf id


def test_unknown_field_names_the_field(daemon):
    reply = daemon.call("generate", prompt="rain", duration_sec=10, sed=3)
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["field"] == "sed"
    assert "sed" in reply["error"]["message"]


def test_duration_outside_the_range_names_the_range(daemon):
    reply = daemon.call("generate", prompt="rain", duration_sec=241)
    assert reply["error"]["code"] == -32004
    assert reply["error"]["data"]["min_duration_sec"] == 5
    assert reply["error"]["data"]["max_duration_sec"] == 240


def test_a_line_under_the_cap_is_answered_and_a_five_megabyte_one_is_refused_while_reading_goes_on(daemon):
    # Just under the 1 MiB line cap: decoded and answered (the prompt itself is too long).
    big = json.dumps({"jsonrpc": "2.0", "id": "big", "method": "generate",
                      "params": {"prompt": "x" * (1000 * 1024), "duration_sec": 10}})
    daemon.send_raw(big.encode() + b"\n")
    reply = daemon.wait_reply("big", timeout=30)
    assert reply["error"]["code"] == -32602  # prompt longer than 512 characters

    # Five times the cap: discarded as it streams, one PARSE_ERROR (no id: it was never read whole).
    huge = json.dumps({"jsonrpc": "2.0", "id": "huge", "method": "generate",
                       "params": {"prompt": "x" * (5 * 1024 * 1024), "duration_sec": 10}})
    daemon.send_raw(huge.encode() + b"\n")
    assert daemon.call("ping")["result"]["status"] == "ok"
    refusals = [m for m in daemon.messages if isinstance(m, dict) and m.get("error", {}).get("code") == -32700]
    assert len(refusals) == 1 and refusals[0]["id"] is None
    assert "max_line_bytes" in refusals[0]["error"]["message"]
    assert not any(isinstance(m, dict) and m.get("id") == "huge" for m in daemon.messages)


def test_batch_requests_follow_json_rpc(daemon):
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "ping"},
        {"jsonrpc": "2.0", "method": "ping"},  # a notification: no reply entry
        {"jsonrpc": "2.0", "id": "b", "method": "nope"},
        7,
    ]
    daemon.send_raw(json.dumps(batch).encode() + b"\n")
    daemon.send_raw(b'[{"jsonrpc":"2.0","method":"ping"}]\n')  # only notifications: no reply at all
    daemon.send_raw(b"[]\n")
    assert daemon.call("ping")["result"]["status"] == "ok"
    lists = [m for m in daemon.messages if isinstance(m, list)]
    assert len(lists) == 1
    by_id = {r.get("id"): r for r in lists[0]}
    assert len(lists[0]) == 3
    assert by_id["a"]["result"]["status"] == "ok"
    assert by_id["b"]["error"]["code"] == -32601
    assert by_id[None]["error"]["code"] == -32600
    empty = [m for m in daemon.messages if isinstance(m, dict) and m.get("error", {}).get("message") == "empty batch"]
    assert len(empty) == 1


def test_stdout_carries_only_protocol_lines(daemon):
    daemon.call("generate", prompt="chill", duration_sec=5, seed=3)
    daemon.wait_for("generation_complete")
    daemon.call("get_backends")
    for line in daemon.raw_lines:
        msg = json.loads(line)
        assert (isinstance(msg, dict) and msg.get("jsonrpc") == "2.0") or isinstance(msg, list)


def test_shutdown_exits_zero_and_cancels_the_running_job(daemon):
    track = daemon.call("generate", prompt="chill", duration_sec=240, seed=9)["result"]["track_id"]
    daemon.wait_for("generation_progress", track_id=track, phase="bars")
    assert daemon.call("shutdown")["result"]["status"] == "shutting_down"
    end = daemon.wait_terminal(track, timeout=20)
    assert end["method"] == "generation_cancelled"
    assert daemon.proc.wait(20) == 0


def test_end_of_stdin_stops_the_daemon_cleanly(cache_dir):
    d = Daemon.start(cache_dir)
    d.call("ping")
    assert d.close(timeout=20) == 0
