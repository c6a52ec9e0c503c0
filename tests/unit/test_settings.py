"""Where things live and what persists."""

from __future__ import annotations

import json

from lofi_daemon.settings import Preferences, Settings


def test_cache_dir_comes_from_platformdirs_or_lofi_cache_dir(tmp_path):
    default = Settings.load(env={"HOME": str(tmp_path)})
    assert default.cache_dir.name == "lofi.nvim"
    chosen = Settings.load(env={"LOFI_CACHE_DIR": str(tmp_path / "c")})
    assert chosen.cache_dir == tmp_path / "c"
    assert chosen.models_dir == tmp_path / "c" / "models" and chosen.tracks_dir == tmp_path / "c" / "tracks"


def test_preferences_persist_and_unknown_keys_survive_a_rewrite(tmp_path):
    env = {"LOFI_CACHE_DIR": str(tmp_path / "c"), "LOFI_CONFIG_DIR": str(tmp_path / "cfg")}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps({"device": "cpu", "ace_step_dir": "/x"}))
    s = Settings.load(env=env)
    assert s.prefs.device == "cpu" and s.prefs.extra == {"ace_step_dir": "/x"}
    s.prefs.default_backend = "musicgen"
    s.save_prefs()
    again = Settings.load(env=env)
    assert again.prefs.default_backend == "musicgen" and again.prefs.extra["ace_step_dir"] == "/x"


def test_a_broken_config_falls_back_to_defaults(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.json").write_text("{broken")
    s = Settings.load(env={"LOFI_CACHE_DIR": str(tmp_path), "LOFI_CONFIG_DIR": str(cfg)})
    assert s.prefs == Preferences()


def test_an_invalid_device_preference_falls_back_to_auto():
    assert Preferences.from_dict({"device": "tpu"}).device == "auto"
    assert Preferences.from_dict({"device": "mps"}).device == "mps"
