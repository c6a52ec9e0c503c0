"""Generate on the "GPU box", keep and hear the track here: a real local daemon whose generator
is a real second daemon over a pipe pair (what ssh gives), both on the procedural backend."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from process_tree import child_pids
from remote_helpers import files_in, generator_argv, kill_9, local_daemon, remote_pid, sidecar, wait_until


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_remote_job_arrives_whole_and_equal_to_the_remotes_file(tmp_path):
    remote = tmp_path / "gpu-box"
    with local_daemon(tmp_path / "laptop", generator_argv(remote)) as d:
        reply = d.call("generate", prompt="rainy jazz", duration_sec=5, seed=7)["result"]
        done = d.wait_terminal(reply["track_id"], 120)
        progress = d.notifications("generation_progress", track_id=reply["track_id"])
        listed = d.call("list_tracks")["result"]["tracks"]
    assert done["method"] == "generation_complete", done
    local_file = Path(done["path"])
    assert local_file.parent == tmp_path / "laptop" / "tracks"
    meta = sidecar(local_file)
    remote_file = remote / "tracks" / f"{meta['remote']['track_id']}.wav"
    assert local_file.read_bytes() == remote_file.read_bytes()
    assert meta["sha256"] == sha256(remote_file) == sidecar(remote_file)["sha256"]
    assert meta["seed"] == 7 and meta["backend"] == "procedural"
    assert [t["track_id"] for t in listed] == [reply["track_id"]]
    # The remote's progress reached the client under the local id, never going backwards.
    percents = [p["percent"] for p in progress]
    assert percents and percents == sorted(percents) and percents[-1] == 100
    assert {p["phase"] for p in progress} == {"remote", "fetch"}
    assert files_in(tmp_path / "laptop" / "tracks") == sorted([local_file.name, local_file.with_suffix(".json").name])


def test_the_same_request_again_is_a_local_cache_hit(tmp_path):
    with local_daemon(tmp_path / "laptop", generator_argv(tmp_path / "gpu-box")) as d:
        first = d.call("generate", prompt="rain", duration_sec=5, seed=3)["result"]
        assert d.wait_terminal(first["track_id"], 120)["method"] == "generation_complete"
        again = d.call("generate", prompt="rain", duration_sec=5, seed=3)["result"]
    assert again["status"] == "cached" and again["track_id"] == first["track_id"]


def test_cancel_of_a_remote_job_cancels_it_there_and_keeps_nothing(tmp_path):
    remote = tmp_path / "gpu-box"
    with local_daemon(tmp_path / "laptop", generator_argv(remote, paced_sec=30)) as d:
        track_id = d.call("generate", prompt="slow", duration_sec=5, seed=1)["result"]["track_id"]
        d.wait_for("generation_progress", 60, track_id=track_id, phase="remote")
        assert d.call("cancel", track_id=track_id)["result"] == {"cancelled": True, "was_generating": True}
        ended = d.wait_terminal(track_id, 30)
        # The remote's queue is free again: the next job runs there (and is cancelled in turn).
        second = d.call("generate", prompt="slow", duration_sec=5, seed=2)["result"]["track_id"]
        d.wait_for("generation_progress", 60, track_id=second, phase="remote")
        d.call("cancel", track_id=second)
        assert d.wait_terminal(second, 30)["method"] == "generation_cancelled"
    assert ended["method"] == "generation_cancelled" and ended["total_steps"] > 0  # the remote's own steps
    assert files_in(tmp_path / "laptop" / "tracks") == []
    assert [n for n in files_in(remote / "tracks") if not n.endswith(".tmp")] == []
    log = (remote / "logs" / "daemon.log").read_text()
    assert log.count(" cancelled: prompt='slow'") == 2


def test_the_remote_killed_mid_job_is_a_remote_unavailable_error_and_the_next_request_reconnects(tmp_path):
    with local_daemon(tmp_path / "laptop", generator_argv(tmp_path / "gpu-box", paced_sec=30)) as d:
        track_id = d.call("generate", prompt="slow", duration_sec=5, seed=1)["result"]["track_id"]
        d.wait_for("generation_progress", 60, track_id=track_id, phase="remote")
        first_remote = remote_pid(d)
        kill_9(first_remote)
        ended = d.wait_terminal(track_id, 30)
        assert d.call("ping")["result"]["status"] == "ok"  # the local daemon lives on
        again = d.call("generate", prompt="slow", duration_sec=5, seed=2)["result"]["track_id"]
        d.wait_for("generation_progress", 60, track_id=again, phase="remote")
        assert remote_pid(d) != first_remote  # a new remote, started by the next request
        d.call("cancel", track_id=again)
        d.wait_terminal(again, 30)
    assert ended["method"] == "generation_error" and ended["code"] == "REMOTE_UNAVAILABLE", ended
    assert "went away" in ended["message"] and "nothing was kept" in ended["message"]
    assert "starts the remote generator again" in ended["hint"]
    assert files_in(tmp_path / "laptop" / "tracks") == []


def test_local_backends_keep_working_while_the_remote_cannot_start(tmp_path):
    broken = [sys.executable, "-c", "import sys; sys.stderr.write('ssh: Could not resolve hostname gpu-box\\n'); sys.exit(255)"]
    with local_daemon(tmp_path / "laptop", broken, backends="musicgen") as d:
        remote_job = d.call("generate", prompt="rain", duration_sec=5, backend="musicgen", seed=1)["result"]
        failed = d.wait_terminal(remote_job["track_id"], 60)
        local_job = d.call("generate", prompt="rain", duration_sec=5, seed=1)["result"]
        done = d.wait_terminal(local_job["track_id"], 60)
        backends = {b["name"]: b for b in d.call("get_backends")["result"]["backends"]}
        status = d.call("remote_status")["result"]
    assert failed["method"] == "generation_error" and failed["code"] == "REMOTE_UNAVAILABLE", failed
    assert "Could not resolve hostname" in failed["message"]
    assert done["method"] == "generation_complete" and "remote" not in sidecar(done["path"])
    assert backends["musicgen"]["remote"] is True and "went away" in backends["musicgen"]["remote_error"]
    assert "remote" not in backends["procedural"]
    assert status["configured"] is True and status["reachable"] is False and "Could not resolve" in status["error"]


def test_a_remote_of_another_protocol_version_is_refused_with_a_clear_error(tmp_path):
    with local_daemon(tmp_path / "laptop", generator_argv(tmp_path / "gpu-box", protocol=99)) as d:
        track_id = d.call("generate", prompt="rain", duration_sec=5, seed=1)["result"]["track_id"]
        ended = d.wait_terminal(track_id, 60)
    assert ended["method"] == "generation_error" and ended["code"] == "REMOTE_UNAVAILABLE"
    assert ended["message"] == "the remote generator speaks protocol 99, this daemon 1"
    assert ended["remote_protocol"] == 99 and "same lofi.nvim version" in ended["hint"]


def test_a_remote_track_that_fails_verification_is_discarded_and_reported(tmp_path):
    remote = tmp_path / "gpu-box"
    argv = generator_argv(remote)
    # Make the track on the remote first, then damage its file there (same size, other bytes):
    # the local request is a cache hit there, and the fetched bytes no longer match the sidecar.
    with local_daemon(tmp_path / "first-laptop", argv) as d:
        made = d.wait_terminal(d.call("generate", prompt="rain", duration_sec=5, seed=4)["result"]["track_id"], 120)
    remote_file = remote / "tracks" / f"{sidecar(made['path'])['remote']['track_id']}.wav"
    damaged = bytearray(remote_file.read_bytes())
    damaged[5000:5010] = bytes(10)
    remote_file.write_bytes(bytes(damaged))
    with local_daemon(tmp_path / "laptop", argv) as d:
        ended = d.wait_terminal(d.call("generate", prompt="rain", duration_sec=5, seed=4)["result"]["track_id"], 120)
        listed = d.call("list_tracks")["result"]["tracks"]
    assert ended["method"] == "generation_error" and ended["code"] == "REMOTE_UNAVAILABLE", ended
    assert "failed verification and was discarded" in ended["message"]
    assert ended["got_sha256"] == hashlib.sha256(damaged).hexdigest() != ended["expected_sha256"]
    assert listed == [] and files_in(tmp_path / "laptop" / "tracks") == []


def test_get_backends_and_remote_status_show_the_remote_side(tmp_path):
    with local_daemon(tmp_path / "laptop", generator_argv(tmp_path / "gpu-box"), backends="procedural,musicgen") as d:
        backends = {b["name"]: b for b in d.call("get_backends")["result"]["backends"]}
        status = d.call("remote_status")["result"]
        info = d.call("daemon_info")["result"]
    assert backends["procedural"]["remote"] is True and backends["procedural"]["status"] in ("installed", "ready")
    assert backends["musicgen"]["remote"] is True and backends["musicgen"]["status"] == "not_installed"
    assert "remote" not in backends.get("ace_step", {})
    assert status["reachable"] is True and status["protocol"] == 1 and status["version"]
    assert status["installed"] == ["procedural"] and isinstance(status["gpu"], list)
    assert status["backends_sent"] == ["musicgen", "procedural"]
    assert info["generator"]["connected"] is True and isinstance(info["gpu"], list)


def test_the_ssh_link_dying_mid_job_cancels_the_job_on_the_remote(tmp_path):
    remote = tmp_path / "gpu-box"
    ssh = [sys.executable, str(Path(__file__).with_name("fake_ssh.py")), *generator_argv(remote, paced_sec=30)]
    with local_daemon(tmp_path / "laptop", ssh) as d:
        track_id = d.call("generate", prompt="slow", duration_sec=5, seed=1)["result"]["track_id"]
        d.wait_for("generation_progress", 60, track_id=track_id, phase="remote")
        link = remote_pid(d)
        (remote_daemon,) = child_pids(link, "paced_daemon")
        kill_9(link)
        ended = d.wait_terminal(track_id, 30)
        # The remote daemon read EOF on its stdin: it cancels its job and exits by itself.
        wait_until(lambda: not Path(f"/proc/{remote_daemon}").exists() or
                   Path(f"/proc/{remote_daemon}/stat").read_text().split(") ")[1].startswith("Z"), 30, "the remote exit")
    assert ended["method"] == "generation_error" and ended["code"] == "REMOTE_UNAVAILABLE", ended
    assert "cancelled: prompt='slow'" in (remote / "logs" / "daemon.log").read_text()
    assert [n for n in files_in(remote / "tracks")] == []
    assert files_in(tmp_path / "laptop" / "tracks") == []


def test_a_backend_missing_on_the_remote_fails_with_the_remotes_own_code_and_hint(tmp_path):
    with local_daemon(tmp_path / "laptop", generator_argv(tmp_path / "gpu-box"), backends="musicgen") as d:
        reply = d.call("generate", prompt="rain", duration_sec=5, backend="musicgen", seed=1)
        ended = d.wait_terminal(reply["result"]["track_id"], 60)
    assert ended["method"] == "generation_error" and ended["code"] == "BACKEND_NOT_INSTALLED", ended
    assert ended["message"] == "remote: backend musicgen is not installed"
    assert ":LofiSetup musicgen" in ended["hint"]  # which now downloads it on the remote
