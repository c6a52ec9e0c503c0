-- How lazy.nvim runs a plugin's `build = "build.lua"`, reproduced for tests (lazy.nvim
-- itself cannot be installed from a registry the tests reach). From lazy.nvim's
-- lua/lazy/manage/task/plugin.lua and async.lua: the plugin is NOT loaded (no `opts`,
-- no `config`, not on the runtimepath); the file is `loadfile`d and called inside the
-- task's coroutine, whose yields are log lines and whose resumes come from the event loop;
-- an error fails the task. `lazy.core.config.plugins` holds the spec by name, with `dir`,
-- and `lazy.core.plugin.values(plugin, "opts")` resolves opts (a table, or a function
-- called with the plugin and the opts so far).
--   nvim --headless --clean -l lazy_build.lua PLUGIN_DIR OPTS_JSON [table|function]
local dir, opts_json, form = arg[1], arg[2], arg[3] or "table"
local opts = vim.json.decode(opts_json)
local plugin = { name = "lofi.nvim", dir = dir, build = "build.lua", _ = {} }
if form == "function" then
  plugin.opts = function(_, so_far)
    return vim.tbl_deep_extend("force", so_far, opts)
  end
else
  plugin.opts = opts
end
package.loaded["lazy.core.config"] = { plugins = { [plugin.name] = plugin }, spec = {} }
package.loaded["lazy.core.plugin"] = {
  values = function(p, prop)
    local v = rawget(p, prop)
    if type(v) == "function" then
      return v(p, {}) or {}
    end
    return v or {}
  end,
}

local chunk = assert(loadfile(dir .. "/" .. plugin.build))
local co = coroutine.create(function()
  chunk()
end)
while coroutine.status(co) ~= "dead" do
  local ok, msg = coroutine.resume(co)
  if not ok then
    io.stdout:write("ERROR " .. tostring(msg) .. "\n")
    os.exit(1)
  end
  if type(msg) == "string" then
    io.stdout:write("LOG " .. msg .. "\n")
  end
  vim.wait(10)
end
os.exit(0)
