"""A stand-in daemon that misbehaves on purpose, for the client's edge cases.

    ping      -> answers with protocol $SCRIPTED_PROTOCOL (default 1)
    echo      -> first a garbage line, then the answer written in 3-byte pieces with
                 pauses, a multi-byte character cut in two (real pipes, real chunks)
    never     -> no answer at all
"""

from __future__ import annotations

import json
import os
import sys
import time


def write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def main() -> None:
    for line in sys.stdin.buffer:
        request = json.loads(line)
        method, rid = request.get("method"), request.get("id")
        if method == "ping":
            protocol = int(os.environ.get("SCRIPTED_PROTOCOL", "1"))
            reply = {"status": "ok", "version": "scripted", "protocol": protocol}
            write((json.dumps({"jsonrpc": "2.0", "id": rid, "result": reply}) + "\n").encode())
        elif method == "echo":
            write(b"this is not json\n")
            data = (json.dumps({"jsonrpc": "2.0", "id": rid, "result": request.get("params")},
                               ensure_ascii=False) + "\n").encode()
            for i in range(0, len(data), 3):
                write(data[i:i + 3])
                time.sleep(0.002)
        elif method == "shutdown":
            write((json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}) + "\n").encode())
            return


if __name__ == "__main__":
    main()
