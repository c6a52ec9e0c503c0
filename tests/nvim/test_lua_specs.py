"""The pure-Lua specs (framer, client, config, parsing, job state), each in a bare nvim."""

from pathlib import Path

import pytest

from nvim_child import run_lua_spec

SPECS = sorted(Path(__file__).with_name("spec").glob("*_spec.lua"))


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_lua_spec_passes(nvim_bin, spec):
    result = run_lua_spec(nvim_bin, spec)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and " 0 failed" in output, output
