--- Playback through an external player: the first available of mpv, ffplay, afplay,
--- paplay, aplay (or `player.cmd`). One track at a time; stopped on :LofiStop and on exit.
local config = require("lofi.config")
local errors = require("lofi.errors")

local M = {}
local H = { proc = nil, path = nil }

-- The arguments each known player needs to play a file quietly and exit at the end.
M.known = {
  mpv = { "--no-video", "--really-quiet" },
  ffplay = { "-nodisp", "-autoexit", "-loglevel", "quiet" },
  afplay = {},
  paplay = {},
  aplay = { "-q" },
}

--- The first player of `order` found on PATH.
---@param order? string[]
---@return string|nil name, string|nil executable
function M.discover(order)
  for _, name in ipairs(order or config.get().player.order) do
    local exe = vim.fn.exepath(name)
    if exe ~= "" then
      return name, exe
    end
  end
end

--- The argv that plays `path`.
---@param path string
---@return string[]|nil argv, lofi.Error|nil err
function M.command(path)
  local cmd = config.get().player.cmd
  if type(cmd) == "function" then
    local argv = cmd(path)
    if type(argv) ~= "table" or #argv == 0 then
      return nil, errors.new("BAD_ARGUMENT", "player.cmd returned no command", "player.cmd(path) must return a list of strings.")
    end
    return argv
  elseif cmd then
    local argv, placed = {}, false
    for _, part in ipairs(cmd) do
      if part:find("{path}", 1, true) then
        part, placed = part:gsub("{path}", function() return path end), true
      end
      argv[#argv + 1] = part
    end
    if not placed then
      argv[#argv + 1] = path
    end
    return argv
  end
  local name, exe = M.discover()
  if not name then
    return nil, errors.new("NO_PLAYER", "no audio player found (tried " .. table.concat(config.get().player.order, ", ") .. ")")
  end
  local argv = { exe }
  vim.list_extend(argv, M.known[name] or {})
  argv[#argv + 1] = path
  return argv
end

--- Play `path`, stopping whatever plays now.
---@param path string
---@return boolean ok, lofi.Error|nil err
function M.play(path)
  if vim.fn.filereadable(path) ~= 1 then
    return false, errors.new("TRACK_NOT_FOUND", "no audio file at " .. path, "List tracks with :LofiTracks.")
  end
  local argv, err = M.command(path)
  if not argv then
    return false, err
  end
  M.stop()
  H.token = (H.token or 0) + 1
  local token = H.token
  local ok, proc = pcall(vim.system, argv, { stdin = false, stdout = false, stderr = false }, function()
    vim.schedule(function()
      if H.token == token then
        H.proc, H.path = nil, nil
      end
    end)
  end)
  if not ok then
    return false, errors.new("SPAWN_FAILED", "cannot start player " .. argv[1] .. ": " .. tostring(proc), errors.client_codes.NO_PLAYER.hint)
  end
  H.proc, H.path = proc, path
  require("lofi.exit").on_leave("player", "lofi: stop the audio player", function()
    M.stop()
  end)
  return true
end

--- Stop playback. Returns whether something was playing.
function M.stop()
  local proc = H.proc
  H.proc, H.path = nil, nil
  if proc and not proc:is_closing() then
    pcall(proc.kill, proc, "sigterm")
    return true
  end
  return false
end

---@return string|nil path of what plays now
function M.now_playing()
  return H.proc and H.path or nil
end

return M
