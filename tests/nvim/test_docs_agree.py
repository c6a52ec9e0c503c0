"""The README's Neovim section, docs/neovim.md and :help lofi agree with each other and with
the plugin: the same commands (as the running plugin defines them, so new commands must be
documented everywhere), config keys that exist (and :help lists every one), and one lazy.nvim
spec under which every entry point works.
"""

from __future__ import annotations

import re

import pytest
from nvim_child import REPO

README = (REPO / "README.md").read_text()
NEOVIM_SECTION = README[README.index("## Neovim\n"):README.index("\n## ", README.index("## Neovim\n") + 5)]
NEOVIM_MD = (REPO / "docs" / "neovim.md").read_text().split("# For people changing the plugin")[0]
HELP = (REPO / "doc" / "lofi.txt").read_text()
DOCS = {"README.md (Neovim)": NEOVIM_SECTION, "docs/neovim.md": NEOVIM_MD, "doc/lofi.txt": HELP}


@pytest.fixture
def defined(bare_nvim) -> dict:
    return bare_nvim.lua("""
        local names = vim.tbl_filter(function(n) return n:match('^Lofi') end, vim.tbl_keys(vim.api.nvim_get_commands({})))
        table.sort(names)
        return { commands = names, keys = require('lofi.config').keys() }
    """)


@pytest.mark.parametrize("doc", DOCS)
def test_each_doc_names_every_command_and_no_other(defined, doc):
    mentioned = sorted(set(re.findall(r":(Lofi\w*)", DOCS[doc])))
    assert mentioned == defined["commands"], doc


def test_help_has_a_tag_for_every_command(defined):
    tags = sorted(set(re.findall(r"\*:(Lofi\w*)\*", HELP)))
    assert tags == defined["commands"]


def help_config_keys() -> list[str]:
    """The dotted keys of the defaults block in :help lofi-config."""
    block = HELP[HELP.index('require("lofi").setup({'):]
    block = block[:block.index("    })")]
    keys, stack = [], []
    for line in block.splitlines()[1:]:
        code = line.split("--")[0]
        m = re.match(r"\s*(\w+) = (.*)$", code)
        if m:
            key, rest = m.groups()
            if rest.strip() == "{":
                stack.append(key)
            else:
                keys.append(".".join([*stack, key]))
        elif code.strip() in ("},", "}"):
            stack.pop()
    return sorted(keys)


def test_help_lists_every_config_key_with_its_default(defined):
    assert help_config_keys() == defined["keys"]


@pytest.mark.parametrize("doc", DOCS)
def test_config_keys_named_in_each_doc_exist(defined, doc):
    sections = {k.split(".")[0] for k in defined["keys"] if "." in k}
    named = set(re.findall(rf"(?<![\w./-])((?:{'|'.join(sections)})\.[a-z_]+(?:\.[a-z_]+)*)", DOCS[doc]))
    named = {n for n in named if not n.endswith(".lua")}
    assert named <= set(defined["keys"]), (doc, named - set(defined["keys"]))


def lazy_spec(text: str) -> str:
    start = text.index('"<owner>/lofi.nvim"')
    return text[start:text.index("}\n", text.index("opts", start))]


@pytest.mark.parametrize("doc", DOCS)
def test_the_lazy_spec_keeps_every_entry_point_working(defined, doc):
    spec = lazy_spec(DOCS[doc])
    # Loaded at start-up (plugin/lofi.lua is one table); a `cmd` list would leave the other
    # commands, :checkhealth lofi and :help lofi missing until one of its commands ran.
    assert "lazy = false" in spec, spec
    cmd = re.search(r"cmd = \{([^}]*)\}", spec)
    assert cmd is None or sorted(re.findall(r'"(\w+)"', cmd.group(1))) == defined["commands"], spec
    assert 'build = "build.lua"' in spec and "install = {" in spec


def test_the_three_lazy_specs_are_the_same():
    def normalized(doc):
        lines = [re.sub(r"\s*--.*$", "", line).strip() for line in lazy_spec(DOCS[doc]).splitlines()]
        return [line for line in lines if line]
    assert normalized("README.md (Neovim)") == normalized("docs/neovim.md") == normalized("doc/lofi.txt")


def test_every_entry_point_works_right_after_start(bare_nvim, tmp_path):
    # What lazy = false gives: the plugin on the runtimepath, nothing of it required yet.
    assert bare_nvim.lua("return package.loaded['lofi'] == nil and package.loaded['lofi.commands'] == nil")
    for command in ["LofiStatus", "LofiStop", "LofiCancel", "LofiLog"]:
        assert bare_nvim.lua("return vim.fn.exists(':' .. ...)", command) == 2, command
    assert bare_nvim.lua("return #vim.api.nvim_get_runtime_file('lua/lofi/health.lua', false)") == 1
    assert bare_nvim.lua("return #vim.api.nvim_get_runtime_file('doc/lofi.txt', false)") == 1
    assert bare_nvim.lua("return type(require('lofi.lualine')())") == "string"
