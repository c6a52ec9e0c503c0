--- The plugin's own Python environment: <plugin root>/.venv with the daemon installed.
---
--- Used by build.lua (lazy.nvim runs it after install/update), by :LofiInstall and by the
--- daemon lookup. Steps are plain argv lists so they can be shown, tested and rerun.
local M = {}

local H = {}

local is_windows = vim.fn.has("win32") == 1

--- <plugin root>: the folder holding lua/, plugin/ and pyproject.toml.
function M.root()
  local source = debug.getinfo(1, "S").source:sub(2)
  return vim.fn.fnamemodify(source, ":p:h:h:h")
end

function M.venv_dir()
  return M.root() .. "/.venv"
end

local function venv_bin(name)
  if is_windows then
    return M.venv_dir() .. "/Scripts/" .. name .. ".exe"
  end
  return M.venv_dir() .. "/bin/" .. name
end

function M.venv_python()
  return venv_bin("python")
end

function M.venv_daemon()
  return venv_bin("lofi-daemon")
end

--- The commands that build the venv, in order.
---@param opts? {python?: string, extras?: string[]}
---@return {title: string, cmd: string[]}[]
function M.steps(opts)
  local cfg = require("lofi.config").get().install
  opts = opts or {}
  local python = opts.python or cfg.python
  local extras = opts.extras or cfg.extras
  local target = M.root()
  if #extras > 0 then
    target = target .. "[" .. table.concat(extras, ",") .. "]"
  end
  local steps = {}
  if vim.fn.executable(M.venv_python()) ~= 1 then
    steps[#steps + 1] = { title = "create " .. M.venv_dir(), cmd = { python, "-m", "venv", M.venv_dir() } }
  end
  steps[#steps + 1] = {
    title = "install the daemon" .. (#extras > 0 and (" with " .. table.concat(extras, ", ")) or ""),
    cmd = { M.venv_python(), "-m", "pip", "install", "--upgrade", "--disable-pip-version-check", target },
  }
  return steps
end

--- Where the full output of a failed step goes (the error quotes only its gist).
function M.log_file()
  return vim.fn.stdpath("log") .. "/lofi-install.log"
end

function H.write_log(step, result, output)
  local path = M.log_file()
  vim.fn.mkdir(vim.fn.fnamemodify(path, ":h"), "p")
  local file = io.open(path, "a")
  if not file then
    return nil
  end
  file:write(string.format("==== %s %s (exit %s)\n$ %s\n%s\n", os.date("%Y-%m-%d %H:%M:%S"), step.title,
    tostring(result.code), table.concat(step.cmd, " "), output))
  file:close()
  return path
end

-- pip's own diagnosis: its first "ERROR:" lines; without them, the last lines of output.
function H.gist(output)
  local lines = vim.split(vim.trim(output), "\n")
  local picked = {}
  for _, line in ipairs(lines) do
    if line:match("^%s*ERROR:") and #picked < 3 then
      picked[#picked + 1] = vim.trim(line)
    end
  end
  if #picked == 0 then
    picked = vim.list_slice(lines, math.max(1, #lines - 2))
  end
  return table.concat(picked, "; ")
end

local function failure(step, result)
  local output = (result.stderr or "") .. "\n" .. (result.stdout or "")
  local log = H.write_log(step, result, output)
  return require("lofi.errors").new("INSTALL_FAILED",
    string.format("%s failed (exit %s): %s", step.title, tostring(result.code), H.gist(output)),
    log and ("The full output is in " .. log .. "; :checkhealth lofi checks Python.") or nil)
end

--- Run the steps one after another without blocking; `report(msg)` hears each step.
---@param opts? {python?: string, extras?: string[]}
---@param report fun(msg: string)
---@param done fun(err: lofi.Error|nil)
function M.run(opts, report, done)
  local steps = M.steps(opts)
  local function step(i)
    if i > #steps then
      return done(nil)
    end
    report(string.format("[%d/%d] %s", i, #steps, steps[i].title))
    local ok, spawn_err = pcall(vim.system, steps[i].cmd, { text = true }, vim.schedule_wrap(function(result)
      if result.code ~= 0 then
        return done(failure(steps[i], result))
      end
      step(i + 1)
    end))
    if not ok then
      done(require("lofi.errors").new("INSTALL_FAILED", steps[i].title .. ": cannot start " .. steps[i].cmd[1] .. ": " .. tostring(spawn_err)))
    end
  end
  step(1)
end

-- The `opts` of this plugin's lazy.nvim spec, when lazy.nvim is what runs the build.
function H.lazy_spec_opts(root)
  local lazy_config = package.loaded["lazy.core.config"]
  if type(lazy_config) ~= "table" or type(lazy_config.plugins) ~= "table" then
    return nil
  end
  local want = vim.fs.normalize(root)
  for _, plugin in pairs(lazy_config.plugins) do
    if type(plugin) == "table" and plugin.dir and vim.fs.normalize(plugin.dir) == want then
      -- lazy's own resolver merges specs and calls `opts = function(plugin, opts)`.
      local ok, lazy_plugin = pcall(require, "lazy.core.plugin")
      if ok and type(lazy_plugin.values) == "function" then
        local got, values = pcall(lazy_plugin.values, plugin, "opts", false)
        if got then
          return values
        end
      end
      return type(plugin.opts) == "table" and plugin.opts or nil
    end
  end
end

--- The options for build(): LOFI_EXTRAS / LOFI_PYTHON from the environment, else
--- `opts.install` of the plugin's lazy.nvim spec, else the defaults. Raises on a bad option.
---@param root string the plugin folder
---@return {python?: string, extras?: string[], source: string}
function M.build_options(root)
  local from_spec = (H.lazy_spec_opts(root) or {}).install
  local options = { source = from_spec and "the lazy.nvim spec (opts.install)" or "defaults" }
  if from_spec then
    local cfg = require("lofi.config").build({ install = from_spec }).install
    options.python, options.extras = cfg.python, cfg.extras
  end
  local extras = {}
  for word in (os.getenv("LOFI_EXTRAS") or ""):gmatch("[^,%s]+") do
    extras[#extras + 1] = word
  end
  if #extras > 0 then
    options.extras, options.source = extras, "LOFI_EXTRAS"
  end
  if os.getenv("LOFI_PYTHON") and os.getenv("LOFI_PYTHON") ~= "" then
    options.python = os.getenv("LOFI_PYTHON")
  end
  return options
end

--- Blocking variant for build steps. Inside a lazy.nvim build coroutine it yields progress
--- messages; elsewhere (nvim -l build.lua) it writes them to stderr. Raises on failure.
---@param opts? {python?: string, extras?: string[]}
function M.build(opts)
  local in_coroutine = coroutine.running() ~= nil and (coroutine.isyieldable == nil or coroutine.isyieldable())
  local function report(msg)
    if in_coroutine then
      coroutine.yield(msg)
    else
      io.stderr:write("lofi.nvim: " .. msg .. "\n")
    end
  end
  local steps = M.steps(opts)
  if opts and opts.source then
    report("install options from " .. opts.source)
  end
  for i, step in ipairs(steps) do
    report(string.format("[%d/%d] %s", i, #steps, step.title))
    local result
    if in_coroutine then
      -- yield until pip is done, so lazy.nvim's UI keeps drawing meanwhile
      vim.system(step.cmd, { text = true }, function(r)
        result = r
      end)
      while not result do
        coroutine.yield()
      end
    else
      result = vim.system(step.cmd, { text = true }):wait()
    end
    if result.code ~= 0 then
      error(require("lofi.errors").format(failure(step, result)), 0)
    end
  end
  report("done: " .. M.venv_daemon())
end

return M
