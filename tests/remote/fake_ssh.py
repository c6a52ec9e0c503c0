"""A stand-in for ssh: runs the command given as its arguments and relays bytes both ways.

Like ssh it is the only holder of the local pipes, and the remote command's stdin is a pipe
of its own: when this process dies (kill -9), the local side reads EOF and the remote command's
stdin closes, as sshd closes it when the connection drops.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading


def pump(src: int, dst: int) -> None:
    try:
        while data := os.read(src, 1 << 16):
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view):]
    except OSError:
        pass
    finally:
        os.close(dst)


def main() -> None:
    child = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    up = threading.Thread(target=pump, args=(sys.stdin.fileno(), os.dup(child.stdin.fileno())), daemon=True)
    up.start()
    child.stdin.close()
    pump(os.dup(child.stdout.fileno()), sys.stdout.fileno())
    child.stdout.close()
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
