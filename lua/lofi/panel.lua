--- The player panel (:LofiStatus, :Lofi): a focused float that redraws itself while it is
--- open. What plays (prompt, backend, position, volume, loop, radio and its next track),
--- the queue, the daemon; the keys at its foot act on the player. `q` or <Esc> closes it,
--- and so does leaving it: it never stays behind with old text.
local errors = require("lofi.errors")

local M = {}
local H = { ns = vim.api.nvim_create_namespace("lofi.panel") }

M.REDRAW_MS = 500 -- the clock and the percentages move between the daemon's messages
M.ASK_MS = 2000 -- the queue and the daemon facts are asked for again this often

local function playback()
  return require("lofi.playback")
end

local function commands()
  return require("lofi.commands")
end

-- The keys at the foot, in the order shown: {lhs, word, action}.
M.keys = {
  { "p", "pause", function() playback().pause_toggle() end },
  { "n", "next", function() commands().next() end },
  { "+", "louder", function() playback().volume("+10") end },
  { "-", "softer", function() playback().volume("-10") end },
  { "r", "radio", function() playback().radio_toggle("") end },
  { "s", "stop", function() playback().stop() end },
  { "t", "tracks", function() M.close() commands().tracks() end },
  { "u", "unload", function() require("lofi.memory").unload() end },
  { "q", "close", function() M.close() end },
}

-- ----- what the panel says ---------------------------------------------------------------

function H.player_lines(s)
  if not s or s.state == "stopped" or not s.track_id then
    return { "nothing plays" .. (s and s.radio and " (the radio's first track is being made)" or "") }
  end
  local volume = tonumber(s.volume) or 100
  local lines = {
    string.format("%s %s", s.state == "paused" and "⏸ paused " or "▶ playing", s.prompt or s.track_id),
    string.format("  %s · %s%s · %s · loop %s", tostring(s.backend or "?"), errors.clock(s.position_sec),
      s.streaming ~= true and ("/" .. errors.clock(tonumber(s.duration_sec) or 0)) or "", volume <= 0 and "muted" or string.format("volume %d%%", volume),
      s.loop and "on" or "off"),
  }
  return lines
end

function H.radio_line(s)
  if not (s and s.radio) then
    return "radio off"
  end
  local nxt = type(s.next) == "table" and s.next or nil
  if not nxt then
    return "radio on"
  end
  local percent = tonumber(nxt.percent) or 0
  if percent >= 100 then
    return "radio on · next track ready"
  end
  local eta = tonumber(nxt.eta_sec)
  return string.format("radio on · next track %d%%%s", math.floor(percent), eta and (" ~" .. errors.clock(eta)) or "")
end

function H.queue_lines(status)
  if not status then
    return { "queue: asking the daemon…" }
  end
  local jobs = require("lofi.jobs")
  local lines = {}
  local current = status.current
  if current then
    local live = jobs.get(current.track_id) or {}
    local p = current.progress or {}
    local percent = math.max(tonumber(live.percent) or 0, tonumber(p.percent) or 0)
    local eta = tonumber(live.eta_sec) or tonumber(p.eta_sec)
    lines[#lines + 1] = string.format("  making %q %d%%%s", current.prompt or current.track_id, math.floor(percent),
      eta and (" ~" .. errors.clock(eta)) or "")
  end
  for i, job in ipairs(status.queue or {}) do
    lines[#lines + 1] = string.format("  %d. %q", i, job.prompt or job.track_id)
  end
  if #lines == 0 then
    return { "queue empty" }
  end
  table.insert(lines, 1, "queue")
  return lines
end

function H.daemon_line(status, info)
  if not status then
    return "daemon: not connected"
  end
  local parts = {}
  if info and info.pid then
    parts[#parts + 1] = "pid " .. info.pid
  end
  if info and info.clients then
    parts[#parts + 1] = info.clients == 1 and "1 editor" or (info.clients .. " editors")
  end
  parts[#parts + 1] = string.format("backend %s (%s)", tostring(status.backend),
    commands().status_words[status.backend_status] or tostring(status.backend_status))
  return "daemon " .. table.concat(parts, " · ")
end

function H.keys_line()
  local words, shown = {}, {}
  for _, key in ipairs(M.keys) do
    if key[1] == "+" or key[1] == "-" then
      if not shown.volume then
        shown.volume = true
        words[#words + 1] = "+/- volume"
      end
    else
      words[#words + 1] = key[1] .. " " .. key[2]
    end
  end
  words[#words] = "q/Esc close"
  return table.concat(words, "  ")
end

--- The panel's text now, from the player's last state and the daemon's last answers.
---@return string[]
function M.lines()
  local s = playback().now_playing() or playback().state()
  local lines = H.player_lines(s)
  lines[#lines + 1] = H.radio_line(s)
  vim.list_extend(lines, H.queue_lines(H.status))
  lines[#lines + 1] = H.daemon_line(H.status, H.info)
  local memory = H.status and require("lofi.memory").summary(H.status.memory)
  if memory then
    lines[#lines + 1] = "memory " .. memory
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = H.keys_line()
  return lines
end

-- ----- the window ----------------------------------------------------------------------------

function H.ask()
  local lofi = require("lofi")
  lofi.request("get_status", nil, function(err, status)
    H.status = not err and status or nil
    M.render()
  end)
  lofi.request("daemon_info", nil, function(err, info)
    H.info = not err and info or nil
    M.render()
  end)
end

function H.geometry(lines)
  local width = 30
  for _, line in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(line))
  end
  width = math.min(width, vim.o.columns - 4)
  local height = math.min(#lines, math.max(1, vim.o.lines - 4))
  return {
    relative = "editor",
    row = math.max(0, math.floor((vim.o.lines - height) / 2) - 1),
    col = math.max(0, math.floor((vim.o.columns - width) / 2)),
    width = width,
    height = height,
  }
end

--- Redraw the open panel (nothing when it is closed).
function M.render()
  local win = M.win()
  if not win then
    return
  end
  local lines = M.lines()
  local buf = vim.api.nvim_win_get_buf(win)
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.api.nvim_win_set_config(win, H.geometry(lines))
  vim.api.nvim_buf_clear_namespace(buf, H.ns, 0, -1)
  vim.api.nvim_buf_set_extmark(buf, H.ns, #lines - 1, 0, { end_col = #lines[#lines], hl_group = "LofiPanelKeys" })
end

function H.stop_timer()
  if H.timer then
    H.timer:stop()
    H.timer:close()
    H.timer = nil
  end
end

--- Open the panel, focused (or focus it again when it is open).
---@return integer win
function M.open()
  local win = M.win()
  if win then
    vim.api.nvim_set_current_win(win)
    return win
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "lofi"
  local lines = M.lines()
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  local config = vim.tbl_extend("force", H.geometry(lines), {
    style = "minimal",
    border = "rounded",
    title = " lofi ",
    focusable = true,
  })
  H.win = vim.api.nvim_open_win(buf, true, config)
  vim.wo[H.win].wrap = false
  vim.wo[H.win].cursorline = false
  for _, key in ipairs(M.keys) do
    vim.keymap.set("n", key[1], key[3], { buffer = buf, nowait = true, desc = "lofi: " .. key[2] })
  end
  vim.keymap.set("n", "<Esc>", M.close, { buffer = buf, nowait = true, desc = "lofi: close" })
  -- Leaving it closes it: a panel you cannot see the point of should not stay.
  vim.api.nvim_create_autocmd({ "WinLeave", "BufLeave" }, { buffer = buf, once = true, callback = function()
    vim.schedule(M.close)
  end })
  vim.api.nvim_create_autocmd("WinClosed", { pattern = tostring(H.win), once = true, callback = H.stop_timer })
  local asked_ms = -math.huge
  H.timer = vim.uv.new_timer()
  H.timer:start(0, M.REDRAW_MS, vim.schedule_wrap(function()
    if not M.win() then
      return H.stop_timer()
    end
    if vim.uv.now() - asked_ms >= M.ASK_MS then
      asked_ms = vim.uv.now()
      H.ask()
    end
    M.render()
  end))
  return H.win
end

function M.close()
  H.stop_timer()
  local win = M.win()
  H.win = nil
  if win then
    pcall(vim.api.nvim_win_close, win, true)
  end
end

--- The panel's window while it is open, else nil.
function M.win()
  return H.win and vim.api.nvim_win_is_valid(H.win) and H.win or nil
end

return M
