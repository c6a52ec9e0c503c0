"""Where the remote generator's command comes from: LOFI_GENERATOR wins over config.json."""

from __future__ import annotations

import json

from lofi_daemon.settings import Settings


def settings_with(tmp_path, config: dict) -> Settings:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.json").write_text(json.dumps(config))
    return Settings.load({"LOFI_CACHE_DIR": str(tmp_path / "cache"), "LOFI_CONFIG_DIR": str(tmp_path / "config")})


def test_no_generator_means_every_job_runs_here(tmp_path):
    assert settings_with(tmp_path, {}).generator({}) == (None, None)


def test_config_json_names_the_command_and_the_backends(tmp_path):
    s = settings_with(tmp_path, {"generator": ["ssh", "gpu-box", "lofi-daemon", "--stdio"],
                                 "generator_backends": ["ace_step"]})
    assert s.generator({}) == (["ssh", "gpu-box", "lofi-daemon", "--stdio"], ["ace_step"])


def test_a_generator_that_is_a_shell_line_in_config_json_is_refused_and_named(tmp_path):
    s = settings_with(tmp_path, {"generator": "ssh gpu-box lofi-daemon"})
    assert s.generator({}) == (None, None)
    assert any("generator must be a non-empty list of strings" in p for p in s.problems)


def test_the_environment_wins_as_a_json_list_or_as_words_split_without_a_shell(tmp_path):
    s = settings_with(tmp_path, {"generator": ["ssh", "old-box", "lofi-daemon"]})
    as_json = s.generator({"LOFI_GENERATOR": '["ssh", "gpu box", "lofi-daemon"]', "LOFI_GENERATOR_BACKENDS": "musicgen, ace_step"})
    assert as_json == (["ssh", "gpu box", "lofi-daemon"], ["musicgen", "ace_step"])
    words = s.generator({"LOFI_GENERATOR": "ssh -p 2222 'gpu-box' lofi-daemon --stdio; rm -rf ~"})
    assert words[0] == ["ssh", "-p", "2222", "gpu-box", "lofi-daemon", "--stdio;", "rm", "-rf", "~"]  # data, not a shell


def test_a_broken_lofi_generator_falls_back_to_config_json(tmp_path):
    s = settings_with(tmp_path, {"generator": ["ssh", "gpu-box", "lofi-daemon"]})
    assert s.generator({"LOFI_GENERATOR": '["unclosed'})[0] == ["ssh", "gpu-box", "lofi-daemon"]
    assert s.generator({"LOFI_GENERATOR": "[1, 2]"})[0] == ["ssh", "gpu-box", "lofi-daemon"]
