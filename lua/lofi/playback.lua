--- The daemon's player, seen from Neovim. There is one player: the daemon's (it decodes,
--- loops, crossfades and mixes; see docs/protocol.md#playback). This module sends the
--- playback requests, keeps the last `playback_state` (no RPC in the statusline), and
--- shows `playback_error` as one notification.
---
---   require("lofi.playback").play("last" | id | {path = ...}, cb)
---   .pause_toggle() .next() .stop() .volume("+10" | "-10" | "50" | nil) .radio_toggle(prompt?)
---   .statusline()   -- "♪ rainy jazz 1:23/2:00 · next 42%" or ""
local config = require("lofi.config")
local errors = require("lofi.errors")
local notify = require("lofi.notify")

local M = {}
local H = { state = nil, received_ms = 0, radio_jobs = {} }

local function lofi()
  return require("lofi")
end

local function now_ms()
  return vim.uv.now()
end

--- Params every start of playback carries: the configured sink, if any, and keep_playing
--- (whether the music goes on once the last editor has quit).
function H.with_sink(params)
  local player = config.get().player
  if player.sink then
    params.sink = player.sink
  end
  params.keep_playing = player.keep_playing
  return params
end

--- One short line after a player action (skip, pause, volume), unless player.notify is off
--- because the statusline shows it.
function H.feedback(msg)
  if config.get().player.notify then
    notify.info(msg)
  end
end

--- `on_ok(result)`: what to say when it worked, before `cb` hears the answer.
function H.request(method, params, cb, on_ok)
  lofi().request(method, params, function(err, result)
    if err then
      notify.error(err)
    elseif on_ok then
      on_ok(result)
    end
    if cb then
      cb(err, result)
    end
  end)
end

-- ----- notifications from the daemon -------------------------------------------------------

--- `playback_state` / `playback_error` from the daemon; a dead daemon means silence.
function M.handle(method, params)
  if method == "playback_state" then
    H.state, H.received_ms = params, now_ms()
    H.maybe_announce(params)
    H.maybe_say_next(params)
    if params.radio and type(params.next) == "table" and params.next.track_id then
      H.radio_jobs[params.next.track_id] = true
    end
    H.redraw()
  elseif method == "playback_error" then
    H.announce = nil
    local err = errors.new(params.code or "PLAYBACK_FAILED", params.message or "playback failed", params.hint)
    notify.error(err)
  elseif method == "daemon_exit" then
    H.state = nil
    H.redraw()
  end
end

--- "playing <prompt>", once, when the announced track's state shows the sink taking the audio.
function H.maybe_announce(state)
  if H.announce and state.track_id == H.announce and state.sink ~= vim.NIL and state.sink then
    H.announce = nil
    notify.info("playing " .. (state.prompt or state.track_id))
  end
end

--- After :LofiNext, the track that took over, by name (one prompt looks the same otherwise).
function H.maybe_say_next(state)
  local from = H.skipped_from
  if from and state.track_id and state.track_id ~= from and state.state ~= "stopped" then
    H.skipped_from = nil
    H.feedback("next: " .. (state.prompt or state.track_id))
  end
end

--- A generation notification about a track the radio is making (the daemon names it in
--- `playback_state.next` before the job starts): not the user's job.
function M.is_radio_job(method, params)
  return method:sub(1, 11) == "generation_" and type(params) == "table" and H.radio_jobs[params.track_id] == true
end

--- Track ids this editor saw the radio make (for :LofiTracks).
function M.radio_tracks()
  return vim.deepcopy(H.radio_jobs)
end

function H.refresh_line()
  local line = M.statusline()
  if line ~= H.line then
    H.line = line
    pcall(vim.cmd.redrawstatus)
  end
end

function H.redraw()
  H.refresh_line()
  H.tick()
  if package.loaded["lofi.panel"] then
    require("lofi.panel").render()
  end
end

-- While playing, the clock in the statusline moves between the daemon's once-a-second states.
function H.tick()
  local playing = H.state and H.state.state == "playing"
  if playing and not H.timer then
    H.timer = vim.uv.new_timer()
    H.timer:start(1000, 1000, vim.schedule_wrap(H.refresh_line))
  elseif not playing and H.timer then
    H.timer:stop()
    H.timer:close()
    H.timer = nil
  end
end

--- The last state the daemon sent (nil before the first).
---@return table|nil
function M.state()
  return H.state and vim.deepcopy(H.state) or nil
end

--- What plays now: {track_id, prompt, state, position_sec, duration_sec, ...} or nil.
function M.now_playing()
  local s = H.state
  if not s or s.state == "stopped" or not s.track_id then
    return nil
  end
  return vim.tbl_extend("force", vim.deepcopy(s), { position_sec = H.position() })
end

-- The position now: the daemon's last one plus the time since, wrapped round a loop.
function H.position()
  local s = H.state
  local pos = tonumber(s.position_sec) or 0
  if s.state == "playing" then
    pos = pos + (now_ms() - H.received_ms) / 1000
    local dur = tonumber(s.duration_sec) or 0
    if dur > 0 and pos >= dur and s.streaming ~= true then -- (a stream's duration is only what has arrived)
      pos = s.loop and (pos % dur) or dur
    end
  end
  return pos
end

--- "♪ rainy jazz 1:23/2:00 · next 42%" (paused: "♪ ⏸ rainy jazz ..."; a stream still arriving:
--- "♪ rainy jazz 0:04 · AI in ~3:10", no length), "" when nothing plays.
--- Plain text: the caller escapes it for statusline evaluation.
---@return string
function M.statusline()
  local s = M.now_playing()
  if not s then
    return ""
  end
  local icon = config.get().progress.icon
  local prompt = s.prompt or s.track_id
  if #prompt > 32 then
    prompt = vim.fn.strcharpart(prompt, 0, 31) .. "…"
  end
  -- A stream still arriving (a bridge, a track playing while it decodes) has no length yet.
  local duration = s.streaming ~= true and tonumber(s.duration_sec) or nil
  local text = string.format("%s%s%s %s%s", icon ~= "" and (icon .. " ") or "", s.state == "paused" and "⏸ " or "",
    prompt, errors.clock(s.position_sec), duration and ("/" .. errors.clock(duration)) or "")
  local volume = tonumber(s.volume)
  if volume and volume <= 0 then
    text = text .. " · muted"
  elseif volume and math.floor(volume + 0.5) ~= 100 then
    text = text .. string.format(" · vol %d%%", math.floor(volume + 0.5))
  end
  -- A bridge plays while the radio's first track is made: say when it is due (not when the
  -- bridge is that track's own song, as on the procedural backend: no AI track is coming).
  local ai_bridge = type(s.radio_bridge) == "table" and s.radio_bridge.same_song ~= true
  if type(s.next) == "table" and ai_bridge and tonumber(s.next.eta_sec) then
    text = text .. string.format(" · AI in ~%s", errors.clock(s.next.eta_sec))
  elseif type(s.next) == "table" and tonumber(s.next.percent) and s.next.percent < 100 then
    text = text .. string.format(" · next %d%%", math.floor(s.next.percent))
  end
  return text
end

-- ----- requests ----------------------------------------------------------------------------

--- Play a library track by id, "last" (the newest), or {path = "..."}; `opts.queue`: after
--- the current one instead of now; `opts.announce`: say "playing ..." once the sink plays it.
function M.play(which, cb, opts)
  local params = type(which) == "table" and { path = which.path } or { track_id = which or "last" }
  if opts and opts.queue then
    params.queue = true
  end
  H.request("play", H.with_sink(params), function(err, result)
    if not err and opts and opts.announce then
      H.announce = result.track_id
      if H.state then
        H.maybe_announce(H.state) -- the state came before the answer (its clock stays as it was)
      end
    end
    if cb then
      cb(err, result)
    end
  end)
end

--- The highlight group for the statusline text now: LofiPaused, LofiMuted, LofiPlaying
--- (or nil when nothing plays).
function M.highlight()
  local s = M.now_playing()
  if not s then
    return nil
  end
  if s.state == "paused" then
    return "LofiPaused"
  end
  return (tonumber(s.volume) or 100) <= 0 and "LofiMuted" or "LofiPlaying"
end

function M.pause_toggle(cb)
  local playing = H.state and H.state.state == "playing"
  H.request(playing and "pause" or "resume", nil, cb, function()
    H.feedback(playing and "paused" or "playing")
  end)
end

function M.next(cb)
  local from = H.state and H.state.track_id
  H.request("next", nil, function(err, result)
    if not err then
      if result.skipped == false then
        notify.info("the next track is still being made; it follows as soon as it is ready")
      else
        H.skipped_from = from
        if H.state then
          H.maybe_say_next(H.state) -- the new state may have come before the answer
        end
      end
    end
    if cb then
      cb(err, result)
    end
  end)
end

function M.stop(cb)
  H.request("stop", nil, cb, function(result)
    H.feedback(result.radio_stopped and "stopped (radio off)" or "stopped")
  end)
end

--- "50" sets, "+10" / "-10" moves (0-150), nil reports. `cb(err, volume)`.
function M.volume(arg, cb)
  cb = cb or function() end
  local current = H.state and tonumber(H.state.volume) or 100
  local target
  if arg == nil or arg == "" then
    notify.info(string.format("volume %d%%", current))
    return cb(nil, current)
  end
  local sign, digits = tostring(arg):match("^%s*([+-]?)(%d+)%s*$")
  if not digits then
    local err = errors.new("BAD_ARGUMENT", "volume must be a whole percent: N, +N or -N (0-150), got " .. tostring(arg))
    notify.error(err)
    return cb(err, nil)
  end
  local n = tonumber(digits)
  local wanted = sign == "+" and current + n or sign == "-" and current - n or n
  target = math.max(M.MIN_VOLUME, math.min(M.MAX_VOLUME, wanted))
  H.request("set_volume", { volume = target }, function(err, result)
    if not err then
      H.say_volume(target, wanted)
    end
    cb(err, result and result.volume) -- the state follows in playback_state
  end)
end

M.MIN_VOLUME, M.MAX_VOLUME = 0, 150

--- "volume 50%", "muted (volume 0%)"; a clamped request is said plainly, whatever player.notify.
function H.say_volume(target, wanted)
  local text = target == 0 and "muted (volume 0%)" or string.format("volume %d%%", target)
  if wanted > M.MAX_VOLUME then
    notify.info(string.format("%s: the most it goes (%d%% asked)", text, wanted))
  elseif wanted < M.MIN_VOLUME then
    notify.info(string.format("%s: the least it goes (%d%% asked)", text, wanted))
  else
    H.feedback(text)
  end
end

-- ----- the last radio prompt, kept across sessions -----------------------------------------

function H.radio_file()
  return vim.fn.stdpath("state") .. "/lofi/radio_prompt"
end

--- The prompt of the last radio started here (any session), or nil. The file is ours but
--- read as untrusted: one line, some words, at most 512 bytes.
function M.last_radio_prompt()
  local ok, lines = pcall(vim.fn.readfile, H.radio_file(), "", 1)
  local line = ok and type(lines) == "table" and lines[1] and vim.trim(lines[1]) or ""
  if line == "" or #line > 512 then
    return nil
  end
  return line
end

function H.remember_radio_prompt(prompt)
  local path = H.radio_file()
  pcall(vim.fn.mkdir, vim.fn.fnamemodify(path, ":h"), "p")
  pcall(vim.fn.writefile, { prompt }, path)
end

--- Radio on with `prompt` (default: the last radio prompt, kept across sessions, else
--- player.radio_prompt), or off when it is on.
function M.radio_toggle(prompt, cb)
  if (prompt == nil or prompt == "") and H.state and H.state.radio then
    return H.request("radio_stop", nil, cb, function()
      H.feedback("radio off")
    end)
  end
  if prompt ~= nil and prompt ~= "" and H.state and H.state.radio then
    -- A new mood while it plays: the next track uses it (radio_set_prompt, docs/radio.md).
    return H.request("radio_set_prompt", { prompt = prompt }, cb, function()
      notify.info("radio: next " .. prompt)
    end)
  end
  if prompt == nil or prompt == "" then
    prompt = M.last_radio_prompt() or config.get().player.radio_prompt
  end
  local params = H.with_sink({ prompt = prompt, duration_sec = config.get().generate.duration_sec,
    crossfade_sec = config.get().player.crossfade_sec, bridge = config.get().radio.bridge,
    mode = config.get().radio.mode })
  if config.get().generate.backend then
    params.backend = config.get().generate.backend
  end
  H.request("radio_start", params, function(err, result)
    if not err then
      H.remember_radio_prompt(prompt)
      notify.info("radio: " .. prompt .. (result.from_library and "" or " (the first track is being made)"))
    end
    if cb then
      cb(err, result)
    end
  end)
end

--- After :LofiGenerate (config autoplay): "play" now, "queue" after what plays, or nothing.
function M.autoplay(track)
  local mode = config.get().autoplay
  if mode == true then
    mode = "play"
  end
  if mode ~= "play" and mode ~= "queue" or not track.track_id then
    return M.where_it_waits(track)
  end
  if H.state and H.state.radio then
    -- The radio plays: the requested track is its next one, crossfaded in.
    return M.play(track.track_id, function(err, result)
      if not err and result.radio_next then
        notify.info(string.format("%s plays next, after this radio track", track.prompt or track.track_id))
      end
    end, { queue = true })
  end
  M.play(track.track_id, nil, { queue = mode == "queue" })
end

--- A finished track that autoplay leaves alone: say where it waits.
function M.where_it_waits(track)
  if track.track_id and H.state and H.state.radio then
    notify.info(string.format("%s waits in :LofiTracks (autoplay is off; the radio plays on)", track.prompt or track.track_id))
  end
end

return M
