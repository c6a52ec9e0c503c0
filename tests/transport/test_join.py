"""The same request while it is already queued or running joins that job: one track, one file."""

from __future__ import annotations

from daemon_client import Daemon


def test_an_identical_request_while_queued_or_running_gets_the_same_track(cache_dir):
    with Daemon.start(cache_dir) as d:
        running = d.call("generate", prompt="long rain", duration_sec=120, seed=1)["result"]
        queued = d.call("generate", prompt="short rain", duration_sec=5, seed=2)["result"]
        again_running = d.call("generate", prompt="long rain", duration_sec=120, seed=1)["result"]
        again_queued = d.call("generate", prompt="short rain", duration_sec=5, seed=2)["result"]
        other_seed = d.call("generate", prompt="short rain", duration_sec=5, seed=3)["result"]
        assert again_running == {**running, "joined": True}
        assert again_queued == {**queued, "joined": True}
        assert other_seed["track_id"] not in (running["track_id"], queued["track_id"])
        assert d.call("get_status")["result"]["queue_length"] == 2  # short rain (2) and (3), once each
        d.call("cancel", track_id=running["track_id"])
        assert d.wait_terminal(queued["track_id"])["method"] == "generation_complete"
        assert d.wait_terminal(other_seed["track_id"])["method"] == "generation_complete"
        assert len(d.call("list_tracks")["result"]["tracks"]) == 2
