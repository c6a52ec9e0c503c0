"""The user is told which prompt words the procedural backend understood and which it
ignored: in generate's reply, in generation_complete, in the sidecar and by `lofi generate`.
Real daemon over pipes, real CLI process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from daemon_client import Daemon


def test_the_daemon_reports_understood_and_ignored_words_everywhere(cache_dir):
    with Daemon.start(cache_dir) as d:
        reply = d.call("generate", prompt="chill rain, orchestral bagpipes", duration_sec=5, seed=2)["result"]
        assert (reply["understood"], reply["ignored"]) == (["chill", "rain", "orchestral"], ["bagpipes"])
        done = d.wait_for("generation_complete", track_id=reply["track_id"])
        assert (done["understood"], done["ignored"]) == (["chill", "rain", "orchestral"], ["bagpipes"])
        sidecar = json.loads(Path(done["path"]).with_suffix(".json").read_text())
        assert (sidecar["understood"], sidecar["ignored"]) == (["chill", "rain", "orchestral"], ["bagpipes"])
        assert sidecar["model_version"] == "procedural-3" and sidecar["next_section_offset"] >= 1
        again = d.call("generate", prompt="chill rain, orchestral bagpipes", duration_sec=5, seed=2)["result"]
        assert again["status"] == "cached" and again["ignored"] == ["bagpipes"]
        cached = d.wait_for("generation_complete", track_id=reply["track_id"])
        assert cached["understood"] == ["chill", "rain", "orchestral"]


def test_a_song_continues_through_the_protocol_with_section_offset(cache_dir):
    with Daemon.start(cache_dir) as d:
        first = d.call("generate", prompt="lofi", duration_sec=30, seed=5)["result"]
        meta = json.loads(Path(d.wait_for("generation_complete", track_id=first["track_id"])["path"]).with_suffix(".json").read_text())
        nxt = d.call("generate", prompt="lofi", duration_sec=30, seed=5, section_offset=meta["next_section_offset"])["result"]
        meta2 = json.loads(Path(d.wait_for("generation_complete", track_id=nxt["track_id"])["path"]).with_suffix(".json").read_text())
        assert nxt["track_id"] != first["track_id"]
        assert (meta2["key"], meta2["bpm"]) == (meta["key"], meta["bpm"])
        assert meta2["section_offset"] == meta["next_section_offset"] and meta2["params"] == {"section_offset": meta["next_section_offset"]}
        bad = d.call("generate", prompt="lofi", duration_sec=30, seed=5, section_offset=-1)
        assert bad["error"]["code"] == -32602


def test_lofi_generate_prints_what_it_understood(cache_dir):
    env = {**os.environ, "LOFI_CACHE_DIR": str(cache_dir), "LOFI_CONFIG_DIR": str(cache_dir / "config")}
    run = subprocess.run([sys.executable, "-m", "lofi_daemon.cli", "generate", "lofi for 60 minutes, no drums",
                          "--duration", "5", "--seed", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "understood: lofi, no drums · ignored: 60, minutes" in run.stderr.splitlines()
    assert run.stdout.strip().endswith(".wav")
