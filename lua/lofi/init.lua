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
  local playback = require("lofi.playback")
  daemon.set_handlers({
    notification = function(method, params)
      if not playback.is_radio_job(method, params) then -- the radio's tracks show as "next N%"
        jobs.handle(method, params)
      end
    end,
    crash = jobs.fail_all,
  })
  for _, event in ipairs({ "playback_state", "playback_error", "daemon_exit" }) do
    jobs.on(event, function(p) playback.handle(event, p) end)
  end
  jobs.on("generation_complete", function(p)
    local job = jobs.get(p.track_id)
    if job and job.mine then -- every editor hears every track; only the one that asked plays it
      playback.autoplay(p)
    end
  end)
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
    playing = require("lofi.playback").now_playing(),
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

--- The cached statusline text ("♪ rainy jazz 1:23/2:00 · next 42%", "♪ 42% ~0:08", ""):
--- what plays first, then what is being made; safe to call on every redraw.
--- Raw for `%{v:lua.require'lofi'.statusline()}`; `{ escape = true }` doubles each `%` for
--- whatever evaluates the text as statusline syntax again (lualine: use require("lofi.lualine")).
--- `{ highlight = true }`: escaped and wrapped in the group of M.highlight().
---@param opts? {escape?: boolean, highlight?: boolean}
---@return string
function M.statusline(opts)
  local making = require("lofi.progress").statusline()
  local playing = require("lofi.playback").statusline()
  local line
  if playing == "" or making == "" or playing:find(" · next ", 1, true) then
    line = playing ~= "" and playing or making -- the radio's next track is shown once
  else
    local icon = config.get().progress.icon
    if icon ~= "" and making:sub(1, #icon + 1) == icon .. " " then
      making = making:sub(#icon + 2) -- one icon for the whole line
    end
    line = playing .. " · " .. making
  end
  if opts and (opts.escape or opts.highlight) then
    line = line:gsub("%%", "%%%%")
  end
  if opts and opts.highlight and line ~= "" then
    line = "%#" .. M.highlight() .. "#" .. line .. "%*"
  end
  return line
end

--- The highlight group for the statusline text now: LofiPaused, LofiMuted, LofiPlaying
--- while something plays, else LofiGenerating (for lualine: `color = require("lofi").highlight`).
---@return string
function M.highlight()
  return require("lofi.playback").highlight() or "LofiGenerating"
end

--- Play a library track through the daemon's player: an id, "last" (default), or {path=...}.
--- `cb(err, result)`.
function M.play(which, cb)
  require("lofi.playback").play(which or "last", cb)
end

--- Stop playback (and the radio). `cb(err, result)`.
function M.stop(cb)
  require("lofi.playback").stop(cb)
end

--- Radio: endless music from `prompt`; without one, toggles it. `cb(err, result)`.
function M.radio(prompt, cb)
  require("lofi.playback").radio_toggle(prompt, cb)
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
