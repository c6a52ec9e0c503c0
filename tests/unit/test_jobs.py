"""The job queue: capacity, order, cancellation and terminal notifications."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lofi_daemon.backends.base import GenerationRequest
from lofi_daemon.errors import ErrorCode, JobCancelled, ModelLoadFailed, QueueFull, TrackNotFound
from lofi_daemon.jobs import Job, JobQueue


def make_job(track_id: str, duration: float = 10.0) -> Job:
    return Job(track_id=track_id, backend="test", request=GenerationRequest("p", duration, 1), fmt="wav",
               cache_key=track_id)


class Harness:
    """A queue whose runner waits on a gate per job, so tests decide when work happens."""

    def __init__(self, behaviour=None) -> None:
        self.events: list[tuple[str, dict]] = []
        self.gates: dict[str, threading.Event] = {}
        self.started = threading.Event()
        self.behaviour = behaviour or {}
        self.queue = JobQueue(runner=self.run, notify=lambda m, p: self.events.append((m, p)),
                              executor=ThreadPoolExecutor(1))

    def run(self, job, progress):
        progress.plan([("steps", 1)])
        gate = self.gates.setdefault(job.track_id, threading.Event())
        for step in range(100):
            job.cancel.check(step, 100)
            self.started.set()
            if gate.wait(0.01):
                break
            progress.update("steps", step, 100)
        action = self.behaviour.get(job.track_id)
        if action:
            action()
        return {"track_id": job.track_id}

    def release(self, track_id: str) -> None:
        self.gates.setdefault(track_id, threading.Event()).set()

    def terminal(self, track_id: str) -> list[str]:
        return [m for m, p in self.events if p.get("track_id") == track_id
                and m in ("generation_complete", "generation_error", "generation_cancelled")]

    async def until(self, predicate, timeout=5.0):
        for _ in range(int(timeout / 0.01)):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out; events: {self.events[-5:]}")


def run(coro):
    return asyncio.run(coro)


def test_five_jobs_wait_and_the_sixth_is_refused():
    async def scenario():
        h = Harness()
        h.queue.start()
        assert h.queue.submit(make_job("running")) == 0
        await h.until(h.started.is_set)
        assert [h.queue.submit(make_job(f"w{i}")) for i in range(5)] == [1, 2, 3, 4, 5]
        with pytest.raises(QueueFull) as err:
            h.queue.submit(make_job("sixth"))
        assert err.value.facts["queue_length"] == 5
        assert err.value.facts["estimated_wait_sec"] > 0
        await h.queue.shutdown()
    run(scenario())


def test_jobs_run_one_at_a_time_in_submission_order():
    async def scenario():
        h = Harness()
        h.queue.start()
        for name in ("a", "b", "c"):
            h.queue.submit(make_job(name))
            h.release(name)
        await h.until(lambda: len(h.terminal("c")) == 1)
        started = [p["track_id"] for m, p in h.events if m == "generation_started"]
        assert started == ["a", "b", "c"]
        await h.queue.shutdown()
    run(scenario())


def test_cancelling_a_waiting_job_removes_it_without_running_it():
    async def scenario():
        h = Harness()
        h.queue.start()
        h.queue.submit(make_job("a"))
        h.queue.submit(make_job("b"))
        assert h.queue.cancel("b") == {"cancelled": True, "was_generating": False}
        h.release("a")
        await h.until(lambda: h.terminal("a") == ["generation_complete"])
        assert h.terminal("b") == ["generation_cancelled"]
        assert not [p for m, p in h.events if m == "generation_started" and p["track_id"] == "b"]
        await h.queue.shutdown()
    run(scenario())


def test_cancelling_the_running_job_stops_it_at_the_next_step():
    async def scenario():
        h = Harness()
        h.queue.start()
        h.queue.submit(make_job("a"))
        h.queue.submit(make_job("b"))
        await h.until(h.started.is_set)
        assert h.queue.cancel("a") == {"cancelled": True, "was_generating": True}
        await h.until(lambda: h.terminal("a") == ["generation_cancelled"])
        h.release("b")
        await h.until(lambda: h.terminal("b") == ["generation_complete"])
        cancelled = next(p for m, p in h.events if m == "generation_cancelled")
        assert cancelled["total_steps"] == 100 and cancelled["at_step"] < 100
        with pytest.raises(Exception) as err:
            h.queue.cancel("a")
        assert err.value.code == ErrorCode.ALREADY_COMPLETE
        with pytest.raises(TrackNotFound):
            h.queue.cancel("never-existed")
        await h.queue.shutdown()
    run(scenario())


def test_a_crash_in_a_job_becomes_an_error_and_the_next_job_runs():
    def crash():
        raise RuntimeError("boom")

    def load_fail():
        raise ModelLoadFailed("weights missing", hint="Run :LofiSetup musicgen again.")

    async def scenario():
        h = Harness({"a": crash, "b": load_fail})
        h.queue.start()
        for name in ("a", "b", "c"):
            h.queue.submit(make_job(name))
            h.release(name)
        await h.until(lambda: h.terminal("c") == ["generation_complete"])
        errors = {p["track_id"]: p for m, p in h.events if m == "generation_error"}
        assert errors["a"]["code"] == "MODEL_INFERENCE_FAILED" and "boom" in errors["a"]["message"]
        assert errors["a"]["hint"]
        assert errors["b"]["code"] == "MODEL_LOAD_FAILED" and "LofiSetup" in errors["b"]["hint"]
        await h.queue.shutdown()
    run(scenario())


def test_shutdown_cancels_running_and_waiting_jobs_each_exactly_once():
    async def scenario():
        h = Harness()
        h.queue.start()
        for name in ("a", "b", "c"):
            h.queue.submit(make_job(name))
        await h.until(h.started.is_set)
        await h.queue.shutdown()
        for name in ("a", "b", "c"):
            assert h.terminal(name) == ["generation_cancelled"]
        with pytest.raises(Exception):
            h.queue.submit(make_job("late"))
    run(scenario())


def test_job_cancelled_carries_the_step_it_stopped_at():
    err = JobCancelled(3, 27)
    assert err.to_rpc()["data"]["at_step"] == 3 and err.code == ErrorCode.CANCELLED
