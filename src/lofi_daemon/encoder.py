"""Audio encoding in a child process, so a crash in the encoder cannot take the daemon down.

libsndfile is C: a bug in it (the Vorbis writer overflowing its stack on long tracks is one
we have met) kills whichever process runs it. The daemon therefore hands the PCM to a short
``python -m lofi_daemon.encoder`` child over a pipe and gets the file's bytes back; a dead
child is a STORAGE_ERROR for that one track, and a cancelled job kills the child at once.
The child imports only numpy and soundfile (a fraction of a second).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from typing import IO, Callable

import numpy as np

from .errors import JobCancelled, StorageError

log = logging.getLogger(__name__)

POLL_SEC = 0.1  # how quickly a cancel reaches a running encoder


def encode_isolated(audio_data: np.ndarray, sample_rate: int, fmt: str,
                    cancelled: Callable[[], bool] = lambda: False) -> bytes:
    """The bytes of a ``fmt`` file holding (channels, frames) float audio, encoded by a child.

    Raises JobCancelled when ``cancelled()`` turns true while it runs, STORAGE_ERROR when
    the child fails or dies.
    """
    frames = np.ascontiguousarray(np.asarray(audio_data, dtype=np.float32).T)  # (frames, channels)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lofi_daemon.encoder", str(sample_rate), str(frames.shape[1]), fmt],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C meant for the editor does not reach it
    )
    out, err = bytearray(), bytearray()
    pipes = [threading.Thread(target=_feed, args=(proc.stdin, memoryview(frames).cast("B")), daemon=True),
             threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
             threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True)]
    for thread in pipes:
        thread.start()
    try:
        while True:
            try:
                proc.wait(timeout=POLL_SEC)
                break
            except subprocess.TimeoutExpired:
                if cancelled():
                    raise JobCancelled() from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for thread in pipes:
            thread.join()
    seconds = frames.shape[0] / sample_rate
    if proc.returncode != 0:  # the hints below send the user to the log: it must hold the why
        log.warning("the %s encoder exited with %s; its stderr: %s", fmt, proc.returncode,
                    err.decode("utf-8", "replace").strip()[-4000:] or "(empty)")
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise StorageError(
            f"the {fmt} encoder crashed ({name}) while encoding a {seconds:.0f} s track",
            hint="The daemon is fine; try another format (wav or flac) and see the daemon log.",
            stage="encode", format=fmt, signal=name)
    if proc.returncode != 0:
        last = (err.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise StorageError(f"the {fmt} encoder failed: {last}",
                           hint="Try another format (wav or flac); see the daemon log.",
                           stage="encode", format=fmt)
    return bytes(out)


def _feed(pipe: IO[bytes], data: memoryview) -> None:
    try:
        pipe.write(data)
    except (BrokenPipeError, ValueError):
        pass  # the child died or was killed: its exit status tells why
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _drain(pipe: IO[bytes], into: bytearray) -> None:
    while chunk := pipe.read(1 << 20):
        into += chunk
    pipe.close()


def _child(argv: list[str]) -> int:
    from . import audio

    rate, channels, fmt = int(argv[0]), int(argv[1]), argv[2]
    pcm = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32).reshape(-1, channels)
    data = audio.encode(pcm.T, rate, fmt)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
