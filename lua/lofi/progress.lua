--- Where progress shows up. Sinks, all fed from lofi.jobs:
---   * the statusline string (cached; `statusline()` never asks the daemon),
---   * User autocmds LofiProgress / LofiDone (lualine, heirline, fidget users hook in),
---   * live progress in one of: fidget.nvim when installed, Neovim 0.12's native progress
---     messages (nvim_echo kind="progress"), or vim.notify when the notifier can replace
---     a message in place,
---   * one vim.notify when a track is ready, failed or was cancelled.
local config = require("lofi.config")
local errors = require("lofi.errors")
local notify = require("lofi.notify")

local M = {}
local H = {
  line = "",
  flash = nil, -- {text, until_ms}: "done"/"failed"/"cancelled" after a job ends
  flash_timer = nil,
  entries = {}, -- live progress key -> {fidget = handle, native_id = id, record = notify record, last_ms = n}
}

local function now_ms()
  return vim.uv.now()
end

--- The cached statusline text, e.g. "♪ 42% ~0:08". Empty when idle.
--- `opts.escape`: with every `%` doubled, for places that evaluate the text as 'statusline'
--- syntax again (lualine components, `%{%...%}`); a raw `%` there is E539.
---@param opts? {escape?: boolean}
---@return string
function M.statusline(opts)
  if opts and opts.escape then
    return (H.line:gsub("%%", "%%%%"))
  end
  return H.line
end

function H.recompute()
  local cfg = config.get().progress
  local icon = cfg.icon ~= "" and (cfg.icon .. " ") or ""
  local jobs = require("lofi.jobs")
  local parts = {}
  local active = jobs.active()
  local first = active[1]
  if first and first.state == "generating" then
    local text = string.format("%d%%", math.floor(first.percent or 0))
    if type(first.eta_sec) == "number" then
      text = text .. " ~" .. errors.clock(first.eta_sec)
    end
    if #active > 1 then
      text = text .. string.format(" +%d", #active - 1)
    end
    parts[#parts + 1] = text
  elseif first then
    parts[#parts + 1] = #active > 1 and string.format("queued (%d)", #active) or "queued"
  end
  local backends = vim.tbl_keys(jobs.downloads())
  table.sort(backends)
  for _, backend in ipairs(backends) do
    local d = jobs.downloads()[backend]
    parts[#parts + 1] = string.format("↓ %s %d%%", backend, math.floor(tonumber(d.overall_percent) or 0))
  end
  if #parts == 0 and H.flash and now_ms() < H.flash.until_ms then
    parts[1] = H.flash.text
  end
  local line = #parts > 0 and (icon .. table.concat(parts, " · ")) or ""
  if line ~= H.line then
    H.line = line
    pcall(vim.cmd.redrawstatus)
  end
end

function H.set_flash(text)
  local ms = config.get().progress.done_ms
  H.flash = { text = text, until_ms = now_ms() + ms }
  if H.flash_timer then
    H.flash_timer:stop()
  else
    H.flash_timer = vim.uv.new_timer()
  end
  H.flash_timer:start(ms + 10, 0, vim.schedule_wrap(H.recompute))
end

function H.fire(pattern, data)
  vim.api.nvim_exec_autocmds("User", { pattern = pattern, modeline = false, data = data })
end

-- Which sink shows live progress: "fidget", "native", "notify" or nil. A native sink that
-- failed once (H.native_error) is not tried again: progress goes to vim.notify instead.
function H.live_sink()
  local cfg = config.get().progress
  if cfg.fidget and not H.fidget_error and pcall(require, "fidget.progress") then
    return "fidget"
  end
  if cfg.native and vim.fn.has("nvim-0.12") == 1 and not H.native_error then
    return "native"
  end
  if cfg.notify then
    return "notify"
  end
end

local NATIVE_STATUS = { running = "running", done = "success", failed = "failed", cancelled = "cancel" }

--- One Neovim 0.12 progress message (nvim_echo kind="progress"); returns its id, or nil and
--- the error Neovim raised. `source` is required there, the percent an integer 0..100.
function H.native_echo(message, opts)
  local ok, id = pcall(vim.api.nvim_echo, { { message } }, false, {
    id = opts.id,
    kind = "progress",
    source = "lofi",
    title = opts.title,
    status = NATIVE_STATUS[opts.status],
    percent = opts.percent and math.max(0, math.min(100, math.floor(opts.percent))) or nil,
  })
  if ok then
    return id
  end
  return nil, tostring(id)
end

--- Which sink live progress goes to, and whether it works: a real (finished) native progress
--- message is sent when that is the sink, so :checkhealth reports what users will get.
---@return {sink: string|nil, error: string|nil}
function M.check_live_sink()
  local sink = H.live_sink()
  if sink == "native" then
    local _, err = H.native_echo("lofi: progress messages work", { title = "lofi", status = "done", percent = 100 })
    if err then
      H.native_error = err
      return { sink = H.live_sink(), error = "native progress failed: " .. err }
    end
  elseif H.native_error then
    return { sink = sink, error = "native progress failed earlier: " .. H.native_error }
  end
  return { sink = sink }
end

--- Show (or replace) one live progress entry. `status`: running | done | failed | cancelled.
--- `message` carries no percent (fidget and Neovim show `percent` themselves);
--- `with_percent` is the text for vim.notify. `opening` is what vim.notify says first (a
--- notifier that cannot replace says only that).
function H.live(key, title, message, percent, status, opening, with_percent)
  local sink = H.live_sink()
  if sink == "native" then
    local entry = H.entries[key] or {}
    local id, err = H.native_echo(message, { id = entry.native_id, title = title, status = status, percent = percent })
    if id then
      entry.native_id = id
      H.entries[key] = status == "running" and entry or nil
      return
    end
    -- Never let a failing sink hide progress: say why once, then use vim.notify.
    H.native_error = err
    notify.warn("Neovim's progress messages failed (" .. err .. "); showing progress with vim.notify")
    sink = H.live_sink()
  end
  local entry = H.entries[key] or { last_ms = -math.huge }
  H.entries[key] = entry
  local final = status ~= "running"
  if sink == "fidget" then
    local ok, err = pcall(function()
      local fidget = require("fidget.progress")
      if not entry.fidget then
        entry.fidget = fidget.handle.create({ title = title, message = message, percentage = percent, lsp_client = { name = "lofi" } })
      else
        entry.fidget:report({ message = message, percentage = percent })
      end
      if final then
        if status == "done" then
          entry.fidget:finish()
        else
          entry.fidget:cancel()
        end
      end
    end)
    if not ok then
      -- As with native progress: say why once, then vim.notify shows progress.
      H.fidget_error = tostring(err)
      notify.warn("fidget.nvim failed (" .. H.fidget_error .. "); showing progress with vim.notify")
      sink = H.live_sink()
    end
  end
  if sink == "notify" and not final then
    -- The built-in vim.notify cannot replace a message: say it once, not per percent.
    local first = entry.record == nil and entry.last_ms == -math.huge
    local can_replace = entry.record ~= nil
    if first or (can_replace and now_ms() - entry.last_ms >= 1000) then
      entry.last_ms = now_ms()
      -- vim.notify shows no percent of its own: it gets the text that has one.
      entry.record = notify.info(first and opening or (with_percent or message), { id = "lofi." .. key, replace = entry.record, hide_from_history = not first })
    end
  end
  if final then
    H.entries[key] = nil
  end
end

local function describe(job)
  local prompt = job.prompt or job.track_id
  if #prompt > 40 then
    prompt = prompt:sub(1, 37) .. "..."
  end
  return string.format("%q", prompt)
end

--- A job was queued, started or moved.
---@param job lofi.Job
function M.job_update(job)
  H.recompute()
  require("lofi.guard").set(#require("lofi.jobs").active())
  local message, with_percent
  if job.state == "generating" then
    local eta = type(job.eta_sec) == "number" and (" ~" .. errors.clock(job.eta_sec)) or ""
    message = describe(job) .. eta
    with_percent = string.format("%s %d%%%s", describe(job), math.floor(job.percent or 0), eta)
  else
    message = describe(job) .. " queued" .. (job.position and job.position > 0 and (" (#" .. job.position .. ")") or "")
  end
  local opening = string.format("%s %s (%s%s)", job.state == "generating" and "generating" or "queued", describe(job),
    errors.clock(tonumber(job.duration_sec) or 0), job.backend and (", " .. job.backend) or "")
  if job.mine then -- another editor's job shows in the statusline only
    H.live(job.track_id, "lofi", message, job.percent, "running", opening, with_percent)
  end
  H.fire("LofiProgress", {
    kind = "generation",
    track_id = job.track_id,
    state = job.state,
    percent = job.percent,
    phase = job.phase,
    eta_sec = job.eta_sec,
    statusline = H.line,
  })
end

--- " · understood: chill, rain · ignored: orchestral ·" for a backend that reads prompt words; "" otherwise.
---@param r table the generation_complete payload
---@return string
function H.words(r)
  if type(r.understood) ~= "table" then
    return ""
  end
  local line = " · understood: " .. (#r.understood > 0 and table.concat(r.understood, ", ") or "nothing")
  if type(r.ignored) == "table" and #r.ignored > 0 then
    line = line .. " · ignored: " .. table.concat(r.ignored, ", ")
  end
  return line .. " ·"
end

--- A job reached its terminal state.
---@param job lofi.Job
function M.job_done(job)
  local status = ({ complete = "done", error = "failed", cancelled = "cancelled" })[job.state]
  H.set_flash(status)
  H.recompute()
  require("lofi.guard").set(#require("lofi.jobs").active())
  if job.mine then
    H.live(job.track_id, "lofi", describe(job) .. " " .. status, job.percent, status)
  end
  if not job.mine then
    -- Another editor asked for it: that one says so.
  elseif job.state == "complete" then
    local r = job.result or {}
    if config.get().progress.notify and job.cached then
      -- Same prompt, seed, backend and settings: the old file, not a new generation.
      notify.info(string.format("♪ from the library (same prompt, seed and settings): %s (%s) %s", describe(job),
        errors.clock(tonumber(r.duration_sec) or job.duration_sec or 0), job.path and vim.fn.fnamemodify(job.path, ":~") or ""))
    elseif config.get().progress.notify then
      local took = type(r.generation_time_sec) == "number" and string.format(" in %.1f s", r.generation_time_sec) or ""
      notify.info(string.format("♪ ready: %s (%s%s)%s %s", describe(job), errors.clock(tonumber(r.duration_sec) or job.duration_sec or 0), took, H.words(r), job.path and vim.fn.fnamemodify(job.path, ":~") or ""))
    end
  elseif job.state == "error" then
    -- A dead daemon is reported once by lofi.daemon, not once per track.
    if job.error.code ~= "DAEMON_EXITED" then
      notify.error(job.error)
    end
  elseif config.get().progress.notify then
    notify.info(describe(job) .. " cancelled")
  end
  H.fire("LofiDone", {
    kind = "generation",
    track_id = job.track_id,
    status = job.state,
    path = job.path,
    error = job.error,
    statusline = H.line,
  })
end

-- The overall percent is shown by the progress UI itself; only the vim.notify text has it.
local function download_message(p, with_percent)
  local text = p.backend
  if with_percent then
    text = string.format("%s %d%%", text, math.floor(tonumber(p.overall_percent) or 0))
  end
  if p.component then
    text = text .. string.format(" (%s %d%%)", p.component, math.floor(tonumber(p.component_percent) or 0))
  end
  return text
end

--- download_progress params {backend, component, component_percent, overall_percent, ...}.
function M.download_update(p)
  H.recompute()
  H.live("download." .. p.backend, "lofi setup", download_message(p, false), tonumber(p.overall_percent), "running",
    "downloading " .. p.backend, download_message(p, true))
  H.fire("LofiProgress", vim.tbl_extend("force", { kind = "download", statusline = H.line }, p))
end

--- A download ended; `err` is nil on success.
function M.download_done(backend, err)
  H.set_flash(err and "setup failed" or "installed")
  H.recompute()
  H.live("download." .. backend, "lofi setup", backend .. (err and " failed" or " installed"), err and nil or 100, err and "failed" or "done")
  if err then
    notify.error(err)
  else
    notify.info(backend .. " is installed. Use it with :LofiBackend " .. backend)
  end
  H.fire("LofiDone", { kind = "download", backend = backend, status = err and "error" or "complete", error = err, statusline = H.line })
end

return M
