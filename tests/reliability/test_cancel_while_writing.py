"""A cancel that arrives while the track is being encoded and written tells the truth: either
the write stops (``cancelled: true``, then ``generation_cancelled`` and no file), or the
reply says it is too late (ALREADY_COMPLETE, state ``saving``, then ``generation_complete``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from process_tree import child_pids
from daemon_client import TERMINAL, Daemon

from lofi_daemon.backends.base import GenerationRequest
from lofi_daemon.errors import AlreadyComplete
from lofi_daemon.jobs import Job, JobQueue


def test_a_cancel_during_encoding_stops_the_write_and_the_notification_agrees(cache_dir):
    with Daemon.start(cache_dir) as d:
        caught_encoding = False
        for attempt in range(3):  # the encoder may finish before we see it on a busy machine
            reply = d.call("generate", prompt="long cancel", duration_sec=60, seed=20 + attempt, format="ogg")
            track_id = reply["result"]["track_id"]
            # The model part is over; now the track is finished, encoded and written.
            d.wait_for("generation_progress", timeout=240, track_id=track_id, percent=100.0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not child_pids(d.proc.pid, "lofi_daemon.encoder"):
                if any(m.get("params", {}).get("track_id") == track_id and m.get("method") in TERMINAL
                       for m in list(d.messages) if isinstance(m, dict)):
                    break
                time.sleep(0.002)
            encoding = bool(child_pids(d.proc.pid, "lofi_daemon.encoder"))
            answer = d.call("cancel", track_id=track_id)
            done = d.wait_terminal(track_id, timeout=120)
            files = sorted(p.name for p in (cache_dir / "tracks").glob(f"{track_id}*"))
            if "result" in answer and answer["result"]["cancelled"]:
                assert done["method"] == "generation_cancelled", (answer, done)
                assert files == [], files
            else:
                assert answer["error"]["data"]["error_code"] == "ALREADY_COMPLETE", answer
                assert done["method"] == "generation_complete", (answer, done)
            if encoding:
                assert done["method"] == "generation_cancelled"
                caught_encoding = True
                break
        assert caught_encoding, "the cancel never landed while the encoder ran"
        assert not list(child_pids(d.proc.pid, "lofi_daemon.encoder"))  # the encoder was stopped


def test_a_cancel_after_the_commit_point_is_answered_too_late_and_the_job_completes():
    """The job runner is past ``commit()`` (its files are being renamed into place)."""
    committed, finish = threading.Event(), threading.Event()
    events: list[tuple[str, dict]] = []

    def runner(job, progress):
        job.cancel.commit()
        committed.set()
        finish.wait(10)
        return {"track_id": job.track_id}

    async def scenario() -> None:
        queue = JobQueue(runner=runner, notify=lambda m, p: events.append((m, p)), executor=ThreadPoolExecutor(1))
        queue.start()
        queue.submit(Job(track_id="t000000000001", backend="x", request=GenerationRequest("p", 5.0, 1), fmt="wav",
                         cache_key="k"))
        while not committed.is_set():
            await asyncio.sleep(0.01)
        with pytest.raises(AlreadyComplete) as too_late:
            queue.cancel("t000000000001")
        assert too_late.value.facts["state"] == "saving"
        finish.set()
        await queue.shutdown()

    asyncio.run(scenario())
    terminal = [m for m, _ in events if m != "generation_started" and m != "generation_progress"]
    assert terminal == ["generation_complete"]
