-- A tiny test runner for pure-Lua specs, run in a bare headless Neovim:
--   nvim --headless --clean -l tests/nvim/spec/run.lua tests/nvim/spec/framer_spec.lua
-- A spec file calls test(name, fn) for each case. Prints one line per failure, then
-- "N passed, N failed", and exits non-zero when anything failed.
local here = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h")
local root = vim.fn.fnamemodify(here, ":h:h:h")
vim.opt.runtimepath:prepend(root)

local cases = {}
function _G.test(name, fn)
  table.insert(cases, { name = name, fn = fn })
end

function _G.eq(actual, expected, what)
  if not vim.deep_equal(actual, expected) then
    error(string.format("%sexpected %s, got %s", what and (what .. ": ") or "", vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function _G.matches(text, pattern)
  if type(text) ~= "string" or not text:find(pattern) then
    error(string.format("expected %s to match %q", vim.inspect(text), pattern), 2)
  end
end

function _G.raises(fn, pattern)
  local ok, err = pcall(fn)
  if ok then
    error("expected an error matching " .. vim.inspect(pattern), 2)
  end
  if pattern and not tostring(err):find(pattern) then
    error(string.format("error %q does not match %q", tostring(err), pattern), 2)
  end
  return err
end

local failed, passed = 0, 0
for _, file in ipairs(_G.arg) do
  cases = {}
  dofile(file)
  for _, case in ipairs(cases) do
    local ok, err = xpcall(case.fn, debug.traceback)
    if ok then
      passed = passed + 1
    else
      failed = failed + 1
      io.stdout:write(string.format("FAIL %s: %s\n  %s\n", vim.fn.fnamemodify(file, ":t"), case.name, err))
    end
  end
end
io.stdout:write(string.format("%d passed, %d failed\n", passed, failed))
io.stdout:flush()
os.exit(failed == 0 and passed > 0 and 0 or 1)
