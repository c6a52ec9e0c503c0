"""One error table: Python, the Lua plugin and docs/protocol.md must list the same codes."""

from __future__ import annotations

import re

from repo_paths import REPO_ROOT

from lofi_daemon.errors import ERRORS, ErrorCode


def lua_table(name: str) -> dict[str, str]:
    text = (REPO_ROOT / "lua" / "lofi" / "errors.lua").read_text()
    body = re.search(rf"M\.{name}\s*=\s*\{{(.*?)\n\}}", text, re.S).group(1)
    return dict(re.findall(r"^\s*([A-Z_]+)\s*=\s*\"?(-?\w+)\"?,", body, re.M))


def test_every_code_has_a_hint_and_a_level():
    assert set(ERRORS) == set(ErrorCode)
    for info in ERRORS.values():
        assert info.default_hint and info.level in ("error", "warn", "info")


def test_lua_codes_and_levels_match_python():
    assert {k: int(v) for k, v in lua_table("codes").items()} == {c.name: int(c) for c in ErrorCode}
    assert lua_table("levels") == {c.name: ERRORS[c].level for c in ErrorCode}


def test_protocol_doc_lists_the_same_codes_and_levels():
    doc = (REPO_ROOT / "docs" / "protocol.md").read_text()
    rows = re.findall(r"^\| (-\d+) \| ([A-Z_]+) \| (\w+) \|", doc, re.M)
    assert {name: (int(code), level) for code, name, level in rows} == {
        c.name: (int(c), ERRORS[c].level) for c in ErrorCode}
