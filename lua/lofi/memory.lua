--- What the daemon holds in memory, and letting the model go (:LofiUnload).
---
--- Self-contained so the status panel, :LofiStatus and :checkhealth each call one function:
--- `M.summary(memory)` turns the `memory` block of get_status/daemon_info into one line.
local M = {}
local H = {}

--- 1536000 -> "1.5 MB" (decimal units, as the daemon's log writes them).
---@param n number|nil
---@return string
function M.bytes(n)
  n = tonumber(n)
  if not n then
    return "?"
  end
  local units = { "B", "kB", "MB", "GB", "TB" }
  local i = 1
  while n >= 1000 and i < #units do
    n, i = n / 1000, i + 1
  end
  return (i == 1 or n >= 100) and string.format("%d %s", math.floor(n + 0.5), units[i])
    or string.format("%.1f %s", n, units[i])
end

--- One line: "daemon 512 MB, player 37 MB, model musicgen 2.4 GB on cuda" (or "no model loaded").
---@param memory table|nil the `memory` field of get_status or daemon_info
---@return string|nil nil when the daemon sent none (an older daemon)
function M.summary(memory)
  if type(memory) ~= "table" then
    return nil
  end
  local parts = { "daemon " .. M.bytes(memory.daemon_rss_bytes) }
  if memory.playback_rss_bytes ~= nil and memory.playback_rss_bytes ~= vim.NIL then
    parts[#parts + 1] = "player " .. M.bytes(memory.playback_rss_bytes)
  end
  if type(memory.model_backend) == "string" then
    parts[#parts + 1] = string.format("model %s %s on %s", memory.model_backend, M.bytes(memory.model_weight_bytes),
      tostring(memory.device))
  else
    parts[#parts + 1] = "no model loaded"
  end
  return table.concat(parts, ", ")
end

--- The :checkhealth lines: what the daemon holds and when an idle model goes.
---@param h table vim.health
---@param info table|nil daemon_info's result
function M.health(h, info)
  local line = info and M.summary(info.memory)
  if not line then
    h.info("memory: the daemon does not report it (update it with :LofiInstall)")
    return
  end
  h.ok("memory: " .. line)
  local idle = tonumber(info.idle_unload_sec)
  if idle == 0 then
    h.info("an idle model stays loaded (model.idle_unload_sec = 0); :LofiUnload frees it")
  elseif idle then
    h.ok(string.format("an idle model is unloaded after %s s (model.idle_unload_sec)", H.number(idle)))
  end
end

function H.number(x)
  return x == math.floor(x) and tostring(math.floor(x)) or tostring(x)
end

--- :LofiUnload — free the model now (after the running job, which needs it).
function M.unload()
  local notify = require("lofi.notify")
  require("lofi").request("unload", nil, function(err, r)
    if err then
      return notify.error(err)
    end
    if type(r.unloaded) ~= "table" or #r.unloaded == 0 then
      return notify.info("no model was loaded")
    end
    local freed = tonumber(r.freed_bytes)
    notify.info(string.format("unloaded %s%s", table.concat(r.unloaded, ", "),
      freed and freed > 0 and (" (" .. M.bytes(freed) .. " freed)") or ""))
  end)
end

--- The environment the plugin adds for a daemon it starts: `model.idle_unload_sec` as
--- LOFI_IDLE_UNLOAD_SEC, unless `daemon_env` sets that variable itself.
---@param env table<string,string> what is passed already (changed in place)
---@param cfg table the merged config
function M.daemon_env(env, cfg)
  if env.LOFI_IDLE_UNLOAD_SEC == nil and cfg.model and cfg.model.idle_unload_sec ~= nil then
    env.LOFI_IDLE_UNLOAD_SEC = H.number(cfg.model.idle_unload_sec)
  end
  return env
end

return M
