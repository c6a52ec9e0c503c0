"""Framing and dispatch without a process."""

from __future__ import annotations

import asyncio
import json

import pytest

from lofi_daemon.errors import InvalidParams
from lofi_daemon.rpc import framing
from lofi_daemon.rpc.dispatch import Dispatcher
from lofi_daemon.rpc.params import GenerateParams, NoParams, TrackParams, parse


def test_lines_split_across_any_chunk_boundaries_come_out_whole():
    stream = b'{"a":1}\n{"b":"\xc3\xa9"}\n\n{"c":3}\n'
    for cut1 in range(len(stream) + 1):
        for cut2 in range(cut1, len(stream) + 1):
            s = framing.LineSplitter()
            lines = s.feed(stream[:cut1]) + s.feed(stream[cut1:cut2]) + s.feed(stream[cut2:])
            assert lines == [b'{"a":1}', b'{"b":"\xc3\xa9"}', b"", b'{"c":3}']


def test_a_line_over_the_limit_is_reported_once_and_skipped():
    s = framing.LineSplitter(max_line_bytes=10)
    out = s.feed(b"x" * 25) + s.feed(b"yyy\n{}\n")
    assert len(out) == 2 and isinstance(out[0], framing.LineTooLong) and out[1] == b"{}"


def test_crlf_line_endings_are_accepted_and_the_tail_is_kept():
    s = framing.LineSplitter()
    assert s.feed(b'{"a":1}\r\n{"b"') == [b'{"a":1}']
    assert s.tail() == b'{"b"'


def test_decode_rejects_invalid_utf8_and_nan():
    with pytest.raises(ValueError):
        framing.decode(b'{"a":"\xff"}')
    with pytest.raises(ValueError):
        framing.decode(b'{"a":NaN}')
    assert framing.decode('{"a":"é"}'.encode()) == {"a": "é"}


def test_encode_is_one_compact_ascii_line_that_round_trips_any_decoded_string():
    data = framing.encode({"b": "é", "a": [1, 2], "s": "\ud800"})
    assert data.endswith(b"\n") and data.count(b"\n") == 1 and data.isascii()
    assert json.loads(data) == {"b": "é", "a": [1, 2], "s": "\ud800"}


def test_params_reject_unknown_fields_and_wrong_types():
    with pytest.raises(InvalidParams) as err:
        parse(TrackParams, {"track_id": "x", "trackid": "y"})
    assert err.value.facts["field"] == "trackid"
    with pytest.raises(InvalidParams):
        parse(GenerateParams, {"prompt": "x", "duration_sec": "10"})
    with pytest.raises(InvalidParams):
        parse(GenerateParams, {"prompt": "   ", "duration_sec": 10})
    with pytest.raises(InvalidParams):
        parse(GenerateParams, {"prompt": "x", "duration_sec": 10, "seed": 2**63})
    with pytest.raises(InvalidParams):
        parse(NoParams, [1])
    ok = parse(GenerateParams, {"prompt": "x", "duration_sec": 10, "seed": 2**63 - 1, "inference_steps": 5})
    assert ok.seed == 2**63 - 1 and ok.backend_params == {"inference_steps": 5}


def dispatcher() -> Dispatcher:
    d = Dispatcher()

    async def echo(p):
        return {"track_id": p.track_id}

    async def broken(p):
        raise KeyError("oops")

    d.register("echo", TrackParams, echo)
    d.register("broken", NoParams, broken)
    return d


def handle(msg):
    return asyncio.run(dispatcher().handle(msg))


def test_requests_get_results_and_notifications_get_nothing():
    assert handle({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"track_id": "t"}}) == {
        "jsonrpc": "2.0", "id": 1, "result": {"track_id": "t"}}
    assert handle({"jsonrpc": "2.0", "method": "echo", "params": {"track_id": "t"}}) is None
    assert handle({"jsonrpc": "2.0", "method": "nope"}) is None  # errors of notifications are not sent


def test_a_handler_bug_is_an_internal_error_not_a_crash():
    reply = handle({"jsonrpc": "2.0", "id": "x", "method": "broken"})
    assert reply["error"]["code"] == -32603 and reply["error"]["data"]["error_code"] == "INTERNAL_ERROR"


def test_batches_reply_in_a_list_without_notifications():
    reply = handle([
        {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"track_id": "a"}},
        {"jsonrpc": "2.0", "method": "echo", "params": {"track_id": "b"}},
        "junk",
    ])
    assert [r.get("id") for r in reply] == [1, None]
    assert reply[1]["error"]["code"] == -32600
    assert handle([]) ["error"]["code"] == -32600
    assert handle([{"jsonrpc": "2.0", "method": "echo", "params": {"track_id": "b"}}]) is None


def test_ids_must_be_strings_numbers_or_null():
    assert handle({"jsonrpc": "2.0", "id": True, "method": "echo"})["error"]["code"] == -32600
    assert handle({"jsonrpc": "2.0", "id": [1], "method": "echo"})["error"]["code"] == -32600


def test_a_reply_that_cannot_be_encoded_becomes_an_internal_error_not_a_crash():
    import io

    from lofi_daemon.transport.stdio import StdioServer

    out = io.BytesIO()
    server = StdioServer(Dispatcher(), io.BytesIO(), out)
    server.send({"jsonrpc": "2.0", "id": 7, "result": {"x": float("nan")}})
    assert server.flush(timeout=10)  # the writer thread has written it
    reply = json.loads(out.getvalue())
    assert reply["id"] == 7 and reply["error"]["code"] == -32603
