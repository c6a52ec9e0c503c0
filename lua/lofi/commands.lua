--- The bodies of the :Lofi* commands and their completion. plugin/lofi.lua only names them.
local errors = require("lofi.errors")
local notify = require("lofi.notify")

local M = {}
local H = {}

local function lofi()
  return require("lofi")
end

-- Keys :LofiGenerate knows by name (others go to the backend as they are).
M.generate_keys = { "backend", "seed", "steps", "scheduler", "guidance", "duration", "format" }
M.value_choices = {
  scheduler = { "euler", "heun", "pingpong" },
  format = { "wav", "flac", "ogg" },
  cfg_type = { "apg", "cfg" },
}
M.static_backends = { "procedural", "musicgen", "ace_step", "ace_step_15", "stable_audio_3" }

--- "42" -> 42, "true" -> true, '""' -> "", long digit strings stay strings (see rpc.lua on seeds).
function H.value(key, text)
  local quoted = text:match('^"(.*)"$') or text:match("^'(.*)'$")
  if quoted then
    return quoted
  end
  if text == "true" or text == "false" then
    return text == "true"
  end
  if key == "seed" and text:match("^%d+$") and #text >= 16 then
    return text
  end
  return tonumber(text) or text
end

--- A duration as people write it: "30", "30s", "2m", "1m30s", "1:30", "90.5s". Seconds, or nil.
---@param text string
---@return number|nil
function M.parse_duration(text)
  if type(text) == "number" then
    return text
  end
  text = vim.trim(tostring(text or "")):lower()
  local seconds = text:match("^(%d+%.?%d*)s?$") or text:match("^(%d+%.?%d*)sec$")
  if seconds then
    return tonumber(seconds)
  end
  local minutes = text:match("^(%d+%.?%d*)m$") or text:match("^(%d+%.?%d*)min$")
  if minutes then
    return tonumber(minutes) * 60
  end
  local m, s = text:match("^(%d+)m(%d+%.?%d*)s?$")
  if not m then
    m, s = text:match("^(%d+):(%d%d%.?%d*)$")
  end
  if m and tonumber(s) < 60 then
    return tonumber(m) * 60 + tonumber(s)
  end
end

H.ERA_WORDS = { the = true, of = true, from = true, ["in"] = true, early = true, late = true, mid = true }

function H.is_decade(word, before)
  return word:match("^%d0s$") ~= nil and before ~= nil and H.ERA_WORDS[before:lower()] == true
end

--- Parse `:LofiGenerate` arguments: words are the prompt, a last word that is a duration
--- (`30s`, `2m`, `1:30`, or a bare number of seconds) is the duration, key=value pairs are
--- options (steps=, guidance=, seed=, duration=2m, ...). The prompt of vim.ui.input is
--- parsed the same way.
---@param args string
---@return table opts for require("lofi").generate (prompt may be "")
function M.parse_generate(args)
  local words, opts = {}, {}
  for token in vim.trim(args or ""):gmatch("%S+") do
    local key, value = token:match("^([%a_][%w_%-]*)=(.*)$")
    if key then
      key = key:gsub("%-", "_")
      opts[key] = H.value(key, value)
      if key == "duration" or key == "duration_sec" then
        opts[key] = M.parse_duration(value) or opts[key]
      end
    else
      words[#words + 1] = token
    end
  end
  if #words > 0 and opts.duration == nil and opts.duration_sec == nil then
    local seconds = M.parse_duration(words[#words])
    if seconds and H.is_decade(words[#words], words[#words - 1]) then
      seconds = nil -- "hip hop from the 90s" is an era, not 90 seconds
    end
    if seconds then
      table.remove(words)
      opts.duration = seconds
    end
  end
  opts.prompt = table.concat(words, " ")
  return opts
end

-- Comment leaders of the current buffer, longest first: from 'commentstring' ("-- %s",
-- "/* %s */") and 'comments' ("://,b:#,s1:/*,mb:*,ex:*/").
function H.comment_marks()
  local leaders, trailers = {}, {}
  local cms = vim.bo.commentstring or ""
  local before, after = cms:match("^(.-)%%s(.-)$")
  if before and vim.trim(before) ~= "" then
    leaders[#leaders + 1] = vim.trim(before)
  end
  if after and vim.trim(after) ~= "" then
    trailers[#trailers + 1] = vim.trim(after)
  end
  for part in (vim.bo.comments or ""):gmatch("[^,]+") do
    local flags, text = part:match("^([^:]*):(.*)$")
    if text and vim.trim(text) ~= "" then
      if flags:find("e") then
        trailers[#trailers + 1] = vim.trim(text)
      else
        -- "b": the leader counts only when a blank follows ("- item", not "--x")
        leaders[#leaders + 1] = vim.trim(text) .. (flags:find("b") and " " or "")
      end
    end
  end
  local by_length = function(a, b) return #vim.trim(a) > #vim.trim(b) end
  table.sort(leaders, by_length)
  table.sort(trailers, by_length)
  return leaders, trailers
end

--- One line of a selection without its comment leader (and block comment end).
function H.strip_comment(line, leaders, trailers)
  line = vim.trim(line)
  for _, leader in ipairs(leaders) do
    if vim.startswith(line, leader) or (leader:sub(-1) == " " and line == vim.trim(leader)) then
      line = vim.trim(line:sub(#leader + 1))
      break
    end
  end
  for _, trailer in ipairs(trailers) do
    if vim.endswith(line, trailer) then
      line = vim.trim(line:sub(1, #line - #trailer))
      break
    end
  end
  return line
end

-- The text of the visual selection (or of the lines of the range) as one line, each line
-- without its comment leader: a prompt written in a comment reads as the prompt.
function H.range_text(o)
  local lines
  local vstart, vend = vim.fn.getpos("'<"), vim.fn.getpos("'>")
  if o.range == 2 and vstart[2] == o.line1 and vend[2] == o.line2 then
    local ok, region = pcall(vim.fn.getregion, vstart, vend, { type = vim.fn.visualmode() })
    lines = ok and region or nil
  end
  lines = lines or vim.api.nvim_buf_get_lines(0, o.line1 - 1, o.line2, false)
  local leaders, trailers = H.comment_marks()
  local parts = {}
  for _, line in ipairs(lines) do
    local text = H.strip_comment(line, leaders, trailers)
    if text ~= "" then
      parts[#parts + 1] = text
    end
  end
  return vim.trim((table.concat(parts, " "):gsub("%s+", " ")))
end

function H.submit(opts)
  local accepted = false
  opts.on_queued = function(result)
    accepted = true
    if result.position and result.position > 0 then
      notify.info(string.format("queued %q at #%d", opts.prompt, result.position))
    end
  end
  lofi().generate(opts, function(err)
    -- Failures after acceptance are shown by lofi.progress; refusals are shown here.
    if err and not accepted then
      notify.error(err)
    end
  end)
end

function M.generate(o)
  local opts = M.parse_generate(o.args)
  if opts.prompt == "" and o.range > 0 then
    opts.prompt = H.range_text(o)
  end
  if opts.prompt ~= "" then
    return H.submit(opts)
  end
  vim.ui.input({ prompt = "lofi prompt: " }, function(input)
    if not input or vim.trim(input) == "" then
      return
    end
    -- What is typed here reads like the command line: "sad rainy jazz 20s seed=3".
    local typed = M.parse_generate(input)
    if typed.prompt == "" then
      return notify.error(errors.new("BAD_ARGUMENT", "a prompt is required, e.g. 'lofi hip hop, jazzy piano 30s'"))
    end
    H.submit(vim.tbl_extend("force", opts, typed))
  end)
end

function H.size(bytes)
  if type(bytes) ~= "number" or bytes <= 0 then
    return nil
  end
  local units, i = { "B", "KB", "MB", "GB", "TB" }, 1
  while bytes >= 1000 and i < #units do
    bytes, i = bytes / 1000, i + 1
  end
  return string.format(i == 1 and "%d %s" or "%.1f %s", bytes, units[i])
end

-- Backend states in words (the daemon's are identifiers).
M.status_words = {
  ready = "ready",
  installed = "installed",
  not_installed = "not installed",
  downloading = "downloading",
  loading = "loading",
  error = "broken",
}

function H.needs_libraries(b)
  return type(b.missing_libraries) == "table" and #b.missing_libraries > 0
end

function H.describe_backend(b)
  local parts = { M.status_words[b.status] or tostring(b.status) }
  local size = H.size(b.size_bytes)
  if size then
    parts[#parts + 1] = size
  end
  if H.needs_libraries(b) then
    parts[#parts + 1] = "needs :LofiInstall models"
  end
  return string.format("%s (%s)", b.name, table.concat(parts, ", "))
end

-- get_backends, remembering the names for completion.
function H.backends(cb)
  lofi().request("get_backends", nil, function(err, result)
    if err then
      return notify.error(err)
    end
    H.backend_names = vim.tbl_map(function(b) return b.name end, result.backends or {})
    cb(result.backends or {}, result.default_backend)
  end)
end

function H.download(name)
  lofi().download(name, function(err, result)
    if err then
      return notify.error(err)
    end
    if result.already_installed then
      notify.info(name .. " is already installed")
    else
      notify.info("downloading " .. name .. "; progress shows in the statusline (:help lofi-statusline)")
    end
  end)
end

-- Gigabytes of weights are no use without the libraries that run them: ask first.
M.setup_choices = {
  { key = "install", label = "Install the model libraries first (:LofiInstall models)" },
  { key = "download", label = "Download the weights anyway" },
  { key = "no", label = "Cancel" },
}

function H.setup_backend(b)
  if type(b.licence) == "string" and b.licence ~= "" and b.status ~= "installed" then
    notify.info(string.format("%s licence: %s", b.name, b.licence)) -- before the download starts
  end
  if not H.needs_libraries(b) then
    return H.download(b.name)
  end
  vim.ui.select(M.setup_choices, {
    prompt = string.format("lofi: %s needs %s, which are not installed", b.name, table.concat(b.missing_libraries, ", ")),
    format_item = function(c) return c.label end,
  }, function(choice)
    if choice and choice.key == "install" then
      notify.info(string.format("installing the model libraries; then run :LofiSetup %s", b.name:gsub("_", "-")))
      M.install({ args = "models" })
    elseif choice and choice.key == "download" then
      H.download(b.name)
    end
  end)
end

function M.setup(o)
  -- The daemon may need to start and the hub to answer: say something at once.
  notify.info((o.args ~= "" and (o.args .. ": ") or "") .. "connecting…")
  H.backends(function(backends)
    if o.args ~= "" then
      local wanted = o.args:gsub("-", "_")
      for _, b in ipairs(backends) do
        if b.name == wanted then
          return H.setup_backend(b)
        end
      end
      return H.download(o.args) -- the daemon names what it does not know
    end
    vim.ui.select(backends, { prompt = "lofi: download which backend?", format_item = H.describe_backend }, function(b)
      if b then
        H.setup_backend(b)
      end
    end)
  end)
end

function M.cancel(o)
  lofi().cancel(o.args ~= "" and o.args or nil, function(err, result)
    if err then
      return notify.error(err)
    end
    if not result.cancelled then
      notify.warn("nothing was cancelled")
    end
  end)
end

function H.set_backend(name)
  lofi().set_backend(name, function(err, result)
    if err then
      return notify.error(err)
    end
    notify.info("backend: " .. result.backend .. (result.previous and result.previous ~= result.backend and (" (was " .. result.previous .. ")") or ""))
  end)
end

function M.backend(o)
  if o.args ~= "" then
    return H.set_backend(o.args)
  end
  H.backends(function(backends, default)
    vim.ui.select(backends, {
      prompt = "lofi backend (now " .. tostring(default) .. ")",
      format_item = H.describe_backend,
    }, function(b)
      if not b then
        return
      end
      if b.status ~= "not_installed" then
        return H.set_backend(b.name)
      end
      -- Not usable yet: offer the download instead of a refusal.
      local setup = ":LofiSetup " .. b.name:gsub("_", "-")
      vim.ui.select({ "Set it up now (" .. setup .. ")", "Cancel" }, { prompt = "lofi: " .. b.name .. " is not installed" },
        function(answer)
          if answer and answer:find("Set it up", 1, true) then
            H.setup_backend(b)
          end
        end)
    end)
  end)
end

--- :LofiStatus and :Lofi: the player panel (lua/lofi/panel.lua).
function M.status()
  require("lofi.panel").open()
end

function M.unload()
  require("lofi.memory").unload()
end

-- Playback goes through the daemon's player (lua/lofi/playback.lua).
function H.play_track(which)
  require("lofi.playback").play(which, nil, { announce = true }) -- "playing ..." once the sink plays
end

function M.play(o)
  local which = vim.trim(o.args or "")
  H.play_track(which == "" and "last" or which)
  lofi().tracks(function(err, tracks) -- ids for completion next time
    H.track_ids = not err and vim.tbl_map(function(t) return t.track_id end, tracks) or H.track_ids
  end)
end

function M.stop()
  require("lofi.playback").stop()
end

function M.pause()
  require("lofi.playback").pause_toggle()
end

function M.next()
  require("lofi.playback").next() -- says which track took over, or that it is still being made
end

function M.volume(o)
  require("lofi.playback").volume(vim.trim(o.args or ""))
end

function M.radio(o)
  require("lofi.playback").radio_toggle(vim.trim(o.args or ""))
end

-- ----- the track picker (vim.ui.select: a picker plugin shows it its own way) -----------

--- "2026-12-06 14:03" from the library's created_at (seconds since the epoch).
function H.when(t)
  local at = tonumber(t.created_at)
  return at and at > 0 and os.date("%Y-%m-%d %H:%M", math.floor(at)) or "????-??-?? ??:??"
end

function H.playing_id()
  local s = require("lofi.playback").now_playing()
  return s and s.track_id
end

--- One row: "▶ 2026-12-06 14:03  0:30  procedural  chill rain" (▶ on the one playing); a
--- group: "  2026-12-06 14:03  ×10 radio  procedural  chill rain" ("radio" when this editor
--- saw the radio make them).
function H.describe_row(row)
  local t = row.tracks[1]
  local mark = "  "
  for _, member in ipairs(row.tracks) do
    if member.track_id == H.playing then
      mark = "▶ "
    end
  end
  local length = #row.tracks > 1 and string.format("×%d%s", #row.tracks, row.radio and " radio" or "") or errors.clock(tonumber(t.duration_sec) or 0)
  return string.format("%s%s  %s  %s  %s", mark, H.when(t), length, tostring(t.backend), t.prompt or t.track_id)
end

--- Tracks newest first; a run of tracks one after the other with the same prompt and backend
--- (what a radio session leaves) is one row.
---@return {tracks: table[]}[]
function M.track_rows(tracks)
  table.sort(tracks, function(a, b) return (tonumber(a.created_at) or 0) > (tonumber(b.created_at) or 0) end)
  local rows = {}
  for _, t in ipairs(tracks) do
    local last = rows[#rows]
    local first = last and last.tracks[1]
    if last and first.prompt == t.prompt and first.backend == t.backend then
      table.insert(last.tracks, t)
      last.radio = last.radio or t.radio
    else
      rows[#rows + 1] = { tracks = { t }, radio = t.radio }
    end
  end
  return rows
end

function H.describe_track(t)
  return string.format("%s%s  %s · seed %s", t.track_id == H.playing and "▶ " or "  ", H.when(t),
    errors.clock(tonumber(t.duration_sec) or 0), tostring(t.seed))
end

M.track_actions = {
  { label = "Play", run = function(t) H.play_track(t.track_id) end },
  {
    label = "Play next",
    run = function(t)
      require("lofi.playback").play(t.track_id, function(err, result)
        if not err then
          notify.info(string.format("%s plays %s", t.prompt or t.track_id,
            result.radio_next and "next, after this radio track" or result.queued and "next" or "now"))
        end
      end, { queue = true })
    end,
  },
  {
    label = "Regenerate with the same seed",
    run = function(t)
      local opts = { prompt = t.prompt, duration_sec = t.requested_duration_sec or t.duration_sec, backend = t.backend, seed = t.seed, format = t.format }
      opts.params = t.params
      H.submit(opts)
    end,
  },
  {
    label = "Delete",
    run = function(t)
      vim.ui.select({ "Delete", "Keep" }, { prompt = string.format("lofi: delete %q for good?", t.prompt or t.track_id) },
        function(answer)
          if answer ~= "Delete" then
            return
          end
          lofi().request("delete_track", { track_id = t.track_id }, function(err)
            if err then
              return notify.error(err)
            end
            notify.info("deleted " .. (t.prompt or t.track_id))
          end)
        end)
    end,
  },
  {
    label = "Copy the path",
    run = function(t)
      vim.fn.setreg('"', t.path)
      pcall(vim.fn.setreg, "+", t.path) -- no clipboard provider: the unnamed register still has it
      notify.info("copied " .. vim.fn.fnamemodify(t.path, ":~"))
    end,
  },
}

function H.track_menu(track)
  vim.ui.select(M.track_actions, {
    prompt = track.prompt,
    format_item = function(a) return a.label end,
    kind = "lofi.track_action",
  }, function(action)
    if action then
      action.run(track)
    end
  end)
end

function M.tracks()
  lofi().tracks(function(err, tracks)
    if err then
      return notify.error(err)
    end
    if #tracks == 0 then
      return notify.info("no tracks yet; make one with :LofiGenerate")
    end
    H.playing = H.playing_id()
    local radio = require("lofi.playback").radio_tracks()
    for _, t in ipairs(tracks) do
      t.radio = radio[t.track_id] == true
    end
    local rows = M.track_rows(tracks)
    vim.ui.select(rows, { prompt = "lofi tracks (newest first)", format_item = H.describe_row, kind = "lofi.tracks" },
      function(row)
        if not row then
          return
        end
        if #row.tracks == 1 then
          return H.track_menu(row.tracks[1])
        end
        vim.ui.select(row.tracks, { prompt = row.tracks[1].prompt, format_item = H.describe_track,
          kind = "lofi.tracks" }, function(track)
          if track then
            H.track_menu(track)
          end
        end)
      end)
  end)
end

-- After an install the daemon is restarted (the next command starts the new one). Tracks
-- still generating or queued would die with it, so the user chooses.
M.install_choices = {
  { key = "wait", label = "Install now, restart the daemon after these tracks are done" },
  { key = "now", label = "Install now and stop these tracks" },
  { key = "no", label = "Don't install" },
}

function H.restart_daemon_when_idle(done)
  local jobs = require("lofi.jobs")
  if #jobs.active() == 0 then
    require("lofi.daemon").stop({ force = true }) -- a shared daemon must end too, to load the new install
    return done()
  end
  local group = vim.api.nvim_create_augroup("lofi.install_wait", { clear = true })
  vim.api.nvim_create_autocmd("User", {
    group = group,
    pattern = "LofiDone",
    callback = function()
      if #jobs.active() == 0 then
        vim.api.nvim_del_augroup_by_id(group)
        require("lofi.daemon").stop({ force = true })
        done()
      end
    end,
  })
end

function H.install(extras, restart)
  require("lofi.install").run({ extras = #extras > 0 and extras or nil }, notify.info, function(err)
    if err then
      return notify.error(err)
    end
    local daemon = require("lofi.install").venv_daemon()
    local waiting = #require("lofi.jobs").active()
    if restart == "wait" and waiting > 0 then
      notify.info(string.format("installed: %s; the daemon restarts after %d track%s", daemon, waiting, waiting == 1 and "" or "s"))
    end
    -- The next command starts the freshly installed daemon.
    H.restart_daemon_when_idle(function()
      if restart ~= "wait" or waiting == 0 then
        notify.info("installed: " .. daemon)
      end
    end)
  end)
end

function M.install(o)
  local extras = {}
  for word in o.args:gmatch("%S+") do
    extras[#extras + 1] = word
  end
  local busy = #require("lofi.jobs").active()
  if busy == 0 then
    return H.install(extras, "now")
  end
  vim.ui.select(M.install_choices, {
    prompt = string.format("lofi: %d track%s generating or queued; installing restarts the daemon", busy, busy == 1 and " is" or "s are"),
    format_item = function(c) return c.label end,
  }, function(choice)
    if not choice or choice.key == "no" then
      return notify.info("not installing")
    end
    if choice.key == "now" then
      for _, job in ipairs(require("lofi.jobs").active()) do
        lofi().cancel(job.track_id)
      end
    end
    H.install(extras, choice.key)
  end)
end

-- The daemon's own log (it names it in `ping`), at its newest line. When the daemon cannot
-- start, the file its stderr went to says why.
function M.log()
  local function open(path)
    vim.cmd.split(vim.fn.fnameescape(path))
    vim.bo.autoread = true
    vim.cmd("normal! G")
  end
  local info = require("lofi.daemon").info()
  if info and info.log_file then
    return open(info.log_file)
  end
  lofi().request("ping", nil, function(err, result)
    open(not err and result.log_file or require("lofi.daemon").log_file())
  end)
end

-- ---------------------------------------------------------------- completion

local function matching(items, lead)
  return vim.tbl_filter(function(item) return vim.startswith(item, lead) end, items)
end

function H.backend_choices()
  return H.backend_names or M.static_backends
end

M.durations = { "30s", "1m", "2m" }

-- Prompts of the library, newest first, the last radio prompt first of all (no repeats).
function H.recent_prompts()
  local prompts, seen = {}, {}
  local function add(p)
    if type(p) == "string" and p ~= "" and not seen[p] then
      seen[p] = true
      prompts[#prompts + 1] = p
    end
  end
  add(require("lofi.playback").last_radio_prompt())
  local done = false
  lofi().tracks(function(err, tracks)
    if not err and tracks then
      H.track_prompts = vim.tbl_map(function(t) return t.prompt end, tracks)
    end
    done = true
  end)
  vim.wait(1500, function() return done end, 10)
  for _, p in ipairs(H.track_prompts or {}) do
    add(p)
  end
  return vim.list_slice(prompts, 1, 10)
end

--- What is typed after the command name ("sad pi" of ":LofiGenerate sad pi").
function H.typed_args(line)
  return (line or ""):match("Lofi%a*!?%s+(.*)$") or ""
end

--- Recent prompts that continue what is typed, from the word being completed on: a prompt
--- has spaces, and the command line replaces only that word.
function H.prompt_choices(lead, line)
  local typed = H.typed_args(line)
  local before = typed:sub(1, #typed - #lead)
  local out = {}
  for _, prompt in ipairs(H.recent_prompts()) do
    if vim.startswith(prompt, typed) and #prompt > #typed then
      out[#out + 1] = prompt:sub(#before + 1)
    end
  end
  return out
end

function M.complete_generate(lead, line)
  local key, partial = lead:match("^([%w_]+)=(.*)$")
  if key then
    local choices = key == "backend" and H.backend_choices() or key == "duration" and M.durations
      or M.value_choices[key] or {}
    return vim.tbl_map(function(c) return key .. "=" .. c end, matching(choices, partial))
  end
  local out = H.prompt_choices(lead, line)
  vim.list_extend(out, matching(M.durations, lead))
  vim.list_extend(out, matching(vim.tbl_map(function(k) return k .. "=" end, M.generate_keys), lead))
  return out
end

function M.complete_radio(lead, line)
  return H.prompt_choices(lead, line)
end

function M.complete_backend(lead)
  return matching(H.backend_choices(), lead)
end

function M.complete_cancel(lead)
  return matching(vim.tbl_map(function(j) return j.track_id end, require("lofi.jobs").active()), lead)
end

-- Track ids for completion, asked from the daemon (a short wait; the last list if it is slow).
function H.fetch_track_ids()
  local done = false
  lofi().tracks(function(err, tracks)
    if not err and tracks then
      H.track_ids = vim.tbl_map(function(t) return t.track_id end, tracks)
    end
    done = true
  end)
  vim.wait(1500, function() return done end, 10)
  return H.track_ids or {}
end

function M.complete_play(lead)
  local ids = { "last" }
  vim.list_extend(ids, H.fetch_track_ids())
  return matching(ids, lead)
end

function M.complete_install(lead)
  return matching({ "models" }, lead)
end

return M
