"""The library pickers as a user meets them: plain words, a confirmation before deleting,
honest regeneration from the cache, completion that knows the tracks, and a backend
picker that offers setup for a backend that is not installed."""

from __future__ import annotations

from pathlib import Path


def make_track(nvim, prompt: str, seed: int = 3) -> dict:
    nvim.cmd(f"LofiGenerate {prompt} 5s seed={seed}")
    return nvim.wait_done(len(nvim.lua("return T.done('generation')")) + 1)[-1]


def test_regenerating_with_the_same_seed_says_it_comes_from_the_library(nvim):
    first = make_track(nvim, "library rain")
    nvim.lua("table.insert(T.selects, 'library rain'); table.insert(T.selects, 'Regenerate')")
    nvim.cmd("LofiTracks")
    second = nvim.wait_done(2)[-1]
    assert second["path"] == first["path"]
    last = nvim.messages()[-1]
    assert last.startswith('lofi: ♪ from the library (same prompt, seed and settings): "library rain" (0:05)'), last
    assert " in " not in last  # no old timing shown as if it were new


def test_delete_asks_first_and_keep_keeps_the_track(nvim):
    track = make_track(nvim, "keep me")
    nvim.lua("for _, s in ipairs({ 'keep me', 'Delete', 'Keep' }) do table.insert(T.selects, s) end")
    nvim.cmd("LofiTracks")
    nvim.wait("return #T.asked >= 3", 15, "the three questions")  # the list arrives from the daemon
    asked = nvim.lua("return T.asked[#T.asked]")
    assert asked["prompt"] == 'lofi: delete "keep me" for good?' and asked["labels"] == ["Delete", "Keep"]
    assert Path(track["path"]).is_file()
    assert len(nvim.call("list_tracks")["result"]["tracks"]) == 1

    nvim.lua("for _, s in ipairs({ 'keep me', 'Delete', 'Delete' }) do table.insert(T.selects, s) end")
    nvim.cmd("LofiTracks")
    nvim.wait("return T.messages()[#T.messages()]:find('deleted') ~= nil", 15, "the deletion")
    assert nvim.call("list_tracks")["result"]["tracks"] == []


def test_play_completion_offers_the_library_without_fetching_it_first(nvim):
    track = make_track(nvim, "complete me")
    nvim.lua("package.loaded['lofi.commands'] = nil")  # a fresh command module: nothing remembered
    got = nvim.lua("return vim.fn.getcompletion('LofiPlay ', 'cmdline')")
    assert got == ["last", track["track_id"]]


def test_backend_picker_shows_words_and_offers_setup_for_a_backend_not_installed(nvim):
    nvim.lua("table.insert(T.selects, 'musicgen'); table.insert(T.selects, 'Cancel')")
    nvim.cmd("LofiBackend")
    nvim.wait("return #T.asked >= 2", 15, "the second question")
    picker, offer = nvim.lua("return T.asked")[-2:]
    assert any(label.startswith("musicgen (not installed") for label in picker["labels"]), picker
    assert not any("not_installed" in label for label in picker["labels"])
    assert offer["prompt"] == "lofi: musicgen is not installed"
    assert offer["labels"][0] == "Set it up now (:LofiSetup musicgen)"
    assert not any("is not installed" in m for m in nvim.messages())  # no refusal shown
    assert nvim.call("get_status")["result"]["backend"] == "procedural"


def test_sizes_in_the_picker_match_the_readme(nvim):
    from nvim_child import REPO

    nvim.lua("table.insert(T.selects, 'nothing')")
    nvim.cmd("LofiBackend")
    nvim.wait("return #T.asked >= 1", 15, "the picker")
    labels = {lb.split(" ")[0]: lb for lb in nvim.lua("return T.asked[1].labels")}
    readme = (REPO / "README.md").read_text().splitlines()
    help_text = (REPO / "doc" / "lofi.txt").read_text()
    sized = {name: label for name, label in labels.items() if label.endswith(" GB)")}
    assert "ace_step" in sized  # "ace_step (not installed, 8.3 GB)"
    for name, label in sized.items():  # every size the picker states is the README's and the help's
        size = label.split(", ")[1].rstrip(")")
        readme_row = next(line for line in readme if line.startswith(f"| `{name}`"))
        assert f"| {size} |" in readme_row, (name, size, readme_row)
        assert f"({size})" in help_text, (name, size)
