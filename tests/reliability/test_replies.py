"""One odd string never costs a reply: a lone surrogate (valid JSON, no UTF-8 form) in an id,
a method name or a field name is echoed back escaped, and every request in a batch gets its
own answer."""

from __future__ import annotations

import json

from daemon_client import Daemon


def test_a_lone_surrogate_in_a_batch_costs_no_other_request_its_reply(cache_dir):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": "\ud800", "method": "ping"},
        {"jsonrpc": "2.0", "id": 3, "method": "\ud800"},
        {"jsonrpc": "2.0", "id": 4, "method": "list_tracks", "params": {"\ud800": 1}},
        {"jsonrpc": "2.0", "id": 5, "method": "generate", "params": {"prompt": "rain", "duration_sec": 5}},
        {"jsonrpc": "2.0", "id": 6, "method": "generate", "params": {"prompt": "rain \ud800", "duration_sec": 5}},
    ]
    with Daemon.start(cache_dir) as d:
        d.send_raw(json.dumps(batch).encode() + b"\n")  # json.dumps writes "\ud800" as an escape
        replies = d._wait(lambda m: isinstance(m, list), 30, "the batch reply")
        by_id = {r["id"]: r for r in replies}
        assert set(by_id) == {1, "\ud800", 3, 4, 5, 6}
        assert by_id[1]["result"]["status"] == "ok" and by_id["\ud800"]["result"]["status"] == "ok"
        assert by_id[3]["error"]["data"]["error_code"] == "METHOD_NOT_FOUND"
        assert by_id[4]["error"]["data"]["error_code"] == "INVALID_PARAMS"
        assert by_id[6]["error"]["data"]["error_code"] == "INVALID_PARAMS"  # not text a model can read
        done = d.wait_terminal(by_id[5]["result"]["track_id"])
        assert done["method"] == "generation_complete"
        assert [t["prompt"] for t in d.call("list_tracks")["result"]["tracks"]] == ["rain"]


def test_a_single_request_with_a_surrogate_id_gets_its_own_id_back(cache_dir):
    with Daemon.start(cache_dir) as d:
        d.send_raw(b'{"jsonrpc":"2.0","id":"a\\udfff","method":"ping"}\n')
        reply = d.wait_reply("a\udfff")
        assert reply["result"]["status"] == "ok"
        assert all(line.isascii() for line in d.raw_lines)


def test_a_batch_reply_that_cannot_be_encoded_costs_only_its_own_entry():
    """A handler result with NaN (no JSON form) becomes that request's INTERNAL_ERROR."""
    import asyncio

    from lofi_daemon.rpc import framing
    from lofi_daemon.rpc import params as P
    from lofi_daemon.rpc.dispatch import Dispatcher

    async def fine(_):
        return {"ok": True}

    async def nan(_):
        return {"value": float("nan")}

    d = Dispatcher()
    d.register("fine", P.NoParams, fine)
    d.register("nan", P.NoParams, nan)
    batch = [{"jsonrpc": "2.0", "id": i, "method": m} for i, m in enumerate(["fine", "nan", "fine"])]
    replies = asyncio.run(d.handle(batch))
    line = framing.encode(replies)  # the whole batch reply encodes
    by_id = {r["id"]: r for r in json.loads(line)}
    assert by_id[0]["result"] == {"ok": True} and by_id[2]["result"] == {"ok": True}
    assert by_id[1]["error"]["code"] == -32603
