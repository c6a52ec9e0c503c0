--- lofi.nvim: local AI music for Neovim. The public Lua API.
---
---   require("lofi").setup(opts)            -- optional; validated
---   require("lofi").generate(opts, cb)     -- cb(err, track) when the track is done
---   require("lofi").cancel(id, cb)
---   require("lofi").status()               -- cached, no RPC
---   require("lofi").on(event, fn)          -- returns an unsubscribe function
---   require("lofi").statusline()           -- cached string, e.g. "♪ 42% ~0:08"
---   require("lofi.lualine")                -- the same as a lualine component
---
--- See :help lofi for the rest.
local config = require("lofi.config")
local errors = require("lofi.errors")

local M = {}
local H = {}

--- Configure the plugin. Optional: everything works with the defaults. Every bad option
--- is named in one message; the good ones apply and the bad ones keep their defaults.
---@param opts? table see :help lofi-config
function M.setup(opts)
  local _, problems = config.apply(opts)
  if problems then
    require("lofi.notify").show(problems, vim.log.levels.ERROR)
  end
  H.wire()
end

-- Connect the daemon's notifications to the job registry, once.
function H.wire()
  if H.wired then
    return
  end
  H.wired = true
  local daemon, jobs = require("lofi.daemon"), require("lofi.jobs")
  daemon.set_handlers({ notification = jobs.handle, crash = jobs.fail_all })
  jobs.on("generation_complete", function(p)
    if config.get().autoplay and p.path then
      H.autoplay(p.path)
    end
  end)
end

function H.autoplay(path)
  local ok, err = require("lofi.player").play(path)
  if not ok and not (err.code == "NO_PLAYER" and H.told_no_player) then
    H.told_no_player = err.code == "NO_PLAYER"
    require("lofi.notify").error(err)
  end
end

--- Send a request to the daemon (started on first use). `cb(err, result)`.
---@param method string
---@param params? table
---@param cb? fun(err: lofi.Error|nil, result: any)
function M.request(method, params, cb)
  H.wire()
  require("lofi.daemon").request(method, params, cb)
end

-- Friendly names accepted by generate() and :LofiGenerate, and what the daemon calls them.
M.aliases = {
  duration = "duration_sec",
  steps = "inference_steps",
  guidance = "guidance_scale",
}

--- Build the `generate` params from user options: friendly names mapped, config defaults
--- filled in, backend parameters (`params = {...}` or top-level keys) passed through.
---@param opts table
---@return table|nil params, lofi.Error|nil err
function M.generate_params(opts)
  if type(opts) ~= "table" then
    return nil, errors.new("BAD_ARGUMENT", "generate() takes a table like { prompt = 'lofi hip hop' }")
  end
  local params = {}
  for key, value in pairs(opts) do
    if key ~= "params" then
      params[M.aliases[key] or key] = value
    end
  end
  for key, value in pairs(opts.params or {}) do
    params[M.aliases[key] or key] = value
  end
  if type(params.prompt) ~= "string" or vim.trim(params.prompt) == "" then
    return nil, errors.new("BAD_ARGUMENT", "a prompt is required, e.g. 'lofi hip hop, jazzy piano'")
  end
  params.prompt = vim.trim(params.prompt)
  local defaults = config.get().generate
  params.duration_sec = params.duration_sec or defaults.duration_sec
  params.backend = params.backend or defaults.backend
  params.format = params.format or defaults.format
  return params
end

--- Ask for a track. `cb(err, track)` runs once: `track` is the generation_complete data
--- (track_id, path, duration_sec, sample_rate, backend, model_version, seed, ...), `err`
--- a lofi.Error (refused, failed, cancelled, daemon gone). `opts.on_queued(result)` hears
--- the daemon's immediate answer ({track_id, status, position, seed, backend}).
---@param opts table {prompt, duration_sec?|duration?, backend?, seed?, format?, steps?, guidance?, scheduler?, params?, on_queued?}
---@param cb? fun(err: lofi.Error|nil, track: table|nil)
function M.generate(opts, cb)
  cb = cb or function() end
  local on_queued = type(opts) == "table" and opts.on_queued or nil
  if on_queued then
    opts = vim.deepcopy(opts)
    opts.on_queued = nil
  end
  local params, err = M.generate_params(opts)
  if not params then
    cb(err, nil)
    return
  end
  M.request("generate", params, function(req_err, result)
    if req_err then
      cb(H.in_the_users_words(req_err, opts), nil)
      return
    end
    require("lofi.jobs").accepted(params, result, cb)
    if on_queued then
      on_queued(result)
    end
  end)
end

-- An unknown parameter the user wrote by its friendly name ("steps") is named that way too:
-- "steps= (inference_steps) is not a parameter of procedural".
function H.in_the_users_words(err, opts)
  local data = err.data or {}
  if err.code ~= "INVALID_PARAMS" or type(data.unknown) ~= "table" or type(opts) ~= "table" then
    return err
  end
  local given = vim.tbl_extend("keep", vim.deepcopy(opts), opts.params or {})
  local words = {}
  for _, name in ipairs(data.unknown) do
    local said = name
    for friendly, real in pairs(M.aliases) do
      if real == name and given[friendly] ~= nil and given[name] == nil then
        said = friendly .. "= (" .. name .. ")"
      end
    end
    words[#words + 1] = said
  end
  local copy = vim.deepcopy(err)
  copy.message = string.format("%s %s not %s of %s", table.concat(words, ", "), #words == 1 and "is" or "are",
    #words == 1 and "a parameter" or "parameters", tostring(data.backend or "this backend"))
  return copy
end

--- Cancel a queued or running track; without an id, the one generating now (or the
--- first queued). `cb(err, result)` with result {cancelled, was_generating}.
---@param track_id? string
---@param cb? fun(err: lofi.Error|nil, result: table|nil)
function M.cancel(track_id, cb)
  cb = cb or function() end
  if not track_id then
    local first = require("lofi.jobs").active()[1]
    if not first then
      cb(errors.new("TRACK_NOT_FOUND", "nothing is generating", "Start one with :LofiGenerate."), nil)
      return
    end
    track_id = first.track_id
  end
  M.request("cancel", { track_id = track_id }, cb)
end

--- What the plugin knows now, without asking the daemon: the jobs in progress and queued,
--- running downloads, whether the daemon runs, what it said to ping, what is playing.
---@return table
function M.status()
  local jobs = require("lofi.jobs")
  local daemon = require("lofi.daemon")
  local active = vim.tbl_map(jobs.public, jobs.active())
  return {
    running = daemon.is_running(),
    pid = daemon.pid(),
    daemon = daemon.info(),
    current = active[1] and active[1].state == "generating" and active[1] or nil,
    jobs = active,
    downloads = vim.deepcopy(jobs.downloads()),
    last_track = jobs.public(jobs.last_complete()),
    playing = require("lofi.player").now_playing(),
    statusline = M.statusline(),
  }
end

--- Subscribe to an event (see :help lofi-events); returns an unsubscribe function.
---@param event string
---@param fn fun(data: table)
---@return fun()
function M.on(event, fn)
  H.wire()
  return require("lofi.jobs").on(event, fn)
end

--- The cached statusline text ("♪ 42% ~0:08", "♪ done", ""): safe to call on every redraw.
--- Raw for `%{v:lua.require'lofi'.statusline()}`; `{ escape = true }` doubles each `%` for
--- whatever evaluates the text as statusline syntax again (lualine: use require("lofi.lualine")).
---@param opts? {escape?: boolean}
---@return string
function M.statusline(opts)
  return require("lofi.progress").statusline(opts)
end

--- Play a file (or the last finished track). Returns ok, err.
---@param path? string
function M.play(path)
  path = path or (require("lofi.jobs").last_complete() or {}).path
  if not path then
    return false, errors.new("TRACK_NOT_FOUND", "no track yet", "Make one with :LofiGenerate.")
  end
  return require("lofi.player").play(path)
end

--- Stop playback. Returns whether something was playing.
function M.stop()
  return require("lofi.player").stop()
end

--- Switch the default backend. `cb(err, result)`.
function M.set_backend(name, cb)
  M.request("set_backend", { backend = name }, cb)
end

--- Download a backend's weights; progress arrives as download_* events. `cb(err, result)`.
function M.download(name, cb)
  M.request("download_backend", { backend = name }, cb)
end

--- List the track library. `cb(err, tracks)`.
function M.tracks(cb)
  M.request("list_tracks", nil, function(err, result)
    cb(err, result and result.tracks or nil)
  end)
end

return M
