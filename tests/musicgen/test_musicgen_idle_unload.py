"""An unused model leaves memory, through the real daemon on a tiny MusicGen.

The checkpoint carries ~200 MB of text-embedding rows that no prompt reaches: weights that
cost no compute but that the daemon's resident set size must show, so "the memory came
back" is measured from /proc, not taken from the daemon's word.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from daemon_client import Daemon
from musicgen_helpers import make_backend, tokenizer_dir
from tiny_musicgen import build_tiny_musicgen

BIG_TEXT_VOCAB = 1_600_000  # x 32 floats = 205 MB of embedding
IDLE_SEC = 1
BASE_ENV = {"OMP_NUM_THREADS": "1", "LOFI_DEVICE": "cpu", "LOFI_PLAYBACK": "local"}


@pytest.fixture(scope="module")
def heavy_checkpoint(tmp_path_factory) -> Path:
    return build_tiny_musicgen(tmp_path_factory.mktemp("musicgen-heavy"), tokenizer_dir(),
                               text_vocab_size=BIG_TEXT_VOCAB)


def start(tmp_path: Path, checkpoint: Path, **env: str) -> Daemon:
    cache = tmp_path / "cache"
    make_backend(cache, checkpoint)  # installed where :LofiSetup musicgen puts it
    # One compute thread: on a CPU shared with other work two spinning threads make the toy
    # model many times slower (the daemon would pick one per physical core).
    (cache / "config").mkdir(parents=True, exist_ok=True)
    (cache / "config" / "config.json").write_text(json.dumps({"cpu_threads": 1}))
    return Daemon.start(cache, {**BASE_ENV, "LOFI_IDLE_UNLOAD_SEC": str(IDLE_SEC), **env})


def rss(pid: int) -> int:
    """The daemon's resident set size, read by the test itself."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def generate(d: Daemon, seconds: float = 5, seed: int = 7, prompt: str = "rainy lofi") -> dict:
    reply = d.call("generate", backend="musicgen", prompt=prompt, duration_sec=seconds, seed=seed)
    assert "result" in reply, reply
    return reply["result"]


def finished(d: Daemon, track_id: str) -> dict:
    done = d.wait_terminal(track_id, timeout=300)
    assert done["method"] == "generation_complete", done
    return done


def statuses(d: Daemon) -> list[str]:
    return [n["status"] for n in d.notifications("backend_status", backend="musicgen")]


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def message_index(d: Daemon, pred) -> int:
    return next(i for i, m in enumerate(d.messages) if isinstance(m, dict) and pred(m))


def is_status(status: str):
    return lambda m: m.get("method") == "backend_status" and m["params"] == {"backend": "musicgen", "status": status}


def test_an_idle_model_is_unloaded_its_memory_returns_and_the_next_track_reloads_it(tmp_path, heavy_checkpoint):
    with start(tmp_path, heavy_checkpoint, LOFI_PLAYER_SINK=f"capture {tmp_path / 'radio.f32'} 1") as d:
        # A playing radio on musicgen keeps the model: its next track needs it. The capture
        # sink plays at real-time pace, so between two radio tracks the queue stands empty for
        # about a 5 s pass, several times idle_unload_sec.
        radio = d.call("radio_start", prompt="rainy lofi", duration_sec=5, backend="musicgen", crossfade_sec=0.1)
        assert "result" in radio, radio
        first = finished(d, radio["result"]["first_track_id"])
        first_sha = sha256(first["path"])
        wait_until(lambda: len(d.notifications("generation_complete")) >= 3, 300, "three radio tracks")
        assert "installed" not in statuses(d) and statuses(d)[-1] == "ready"
        loaded_rss = rss(d.proc.pid)
        held = d.call("get_status")["result"]["memory"]
        assert held["model_backend"] == "musicgen" and held["device"] == "cpu"
        assert held["model_weight_bytes"] >= 200e6  # the big embedding (tied rows count once) and the rest

        d.call("pause")  # a paused radio needs no next track: the model may go
        d.wait_for("backend_status", timeout=120, backend="musicgen", status="installed")
        freed = loaded_rss - rss(d.proc.pid)
        assert freed >= held["model_weight_bytes"], (freed, held)
        info = d.call("daemon_info")["result"]
        assert info["idle_unload_sec"] == IDLE_SEC
        assert info["memory"]["model_backend"] is None and info["memory"]["model_weight_bytes"] == 0
        assert info["memory"]["daemon_rss_bytes"] > 0
        assert info["memory"]["playback_rss_bytes"] > 0  # the worker that played the radio
        d.call("radio_stop")

        # The same request again, once its file is gone: the model loads again, same bytes.
        assert d.call("delete_track", track_id=first["track_id"])["result"]["deleted"]
        loads_before = statuses(d).count("loading")
        again = generate(d, seed=first["seed"])
        assert sha256(finished(d, again["track_id"])["path"]) == first_sha
        assert statuses(d).count("loading") == loads_before + 1


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.05)


def test_queued_jobs_keep_the_model_until_the_last_one_is_done(tmp_path, heavy_checkpoint):
    # Three 5 s tracks in a row, each longer than this idle_unload_sec (250 decoder steps take
    # over half a second even on a fast idle CPU): the timer fires during each and finds it busy.
    with start(tmp_path, heavy_checkpoint, LOFI_IDLE_UNLOAD_SEC="0.2") as d:
        ids = [generate(d, seconds=5, seed=seed)["track_id"] for seed in (1, 2, 3)]
        for track_id in ids:
            finished(d, track_id)
        d.wait_for("backend_status", timeout=120, backend="musicgen", status="installed")
        last_done = message_index(d, lambda m: m.get("method") == "generation_complete"
                                  and m["params"]["track_id"] == ids[-1])
        assert message_index(d, is_status("installed")) > last_done
        assert statuses(d).count("loading") == 1  # loaded once for all three


def test_unload_during_a_job_answers_after_it_and_zero_means_never(tmp_path, heavy_checkpoint):
    with start(tmp_path, heavy_checkpoint, LOFI_IDLE_UNLOAD_SEC="0") as d:
        finished(d, generate(d)["track_id"])
        time.sleep(2.5)
        assert statuses(d)[-1] == "ready"  # 0: the model stays while editors are connected

        running = generate(d, seconds=15, seed=9)["track_id"]  # 750 decoder steps: still running at the unload
        d.wait_for("generation_started", timeout=60, track_id=running)
        request = d.send("unload")
        reply = d.wait_reply(request, timeout=300)["result"]
        complete = message_index(d, lambda m: m.get("method") == "generation_complete"
                                 and m["params"]["track_id"] == running)
        assert message_index(d, lambda m: m.get("id") == request and "method" not in m) > complete
        assert reply["waited_for_job"] is True and reply["unloaded"] == ["musicgen"]
        assert reply["rss_before_bytes"] - reply["rss_after_bytes"] >= reply["weight_bytes"] >= 200e6

        idle = d.call("unload")["result"]  # nothing loaded, nothing running: answered at once
        assert idle == {**idle, "unloaded": [], "waited_for_job": False, "weight_bytes": 0}


def test_a_load_that_would_not_fit_is_refused_with_both_numbers_and_the_smaller_choices(tmp_path, tiny_checkpoint):
    limit = 64 * 2**20
    with start(tmp_path, tiny_checkpoint, LOFI_MEMORY_LIMIT_BYTES=str(limit)) as d:
        track = generate(d)["track_id"]
        err = d.wait_terminal(track, timeout=120)
        assert err["method"] == "generation_error" and err["code"] == "MODEL_LOAD_FAILED", err
        assert err["available_bytes"] == limit < err["required_bytes"]
        assert "0.06 GiB available" in err["message"] and "GiB" in err["message"].split("needs")[1]
        assert any("procedural" in choice for choice in err["choices"]), err
        assert "procedural" in err["hint"]
        assert statuses(d)[-1] != "ready"  # nothing was loaded
        assert d.call("ping")["result"]["status"] == "ok"
