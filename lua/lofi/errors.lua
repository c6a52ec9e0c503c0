--- Error codes as data, and the one shape every error takes in the plugin.
---
--- `M.codes` and `M.levels` mirror `ERRORS` in src/lofi_daemon/errors.py line for line;
--- a test compares the two, so add a code on both sides at once. Errors the plugin makes
--- by itself (no daemon involved) live in `M.client_codes` and never go over the wire.
local M = {}

M.codes = {
  PARSE_ERROR = -32700,
  INVALID_REQUEST = -32600,
  METHOD_NOT_FOUND = -32601,
  INVALID_PARAMS = -32602,
  INTERNAL_ERROR = -32603,
  BACKEND_NOT_INSTALLED = -32001,
  BACKEND_LOADING = -32002,
  QUEUE_FULL = -32003,
  INVALID_DURATION = -32004,
  INVALID_BACKEND = -32005,
  TRACK_NOT_FOUND = -32006,
  ALREADY_COMPLETE = -32007,
  DOWNLOAD_IN_PROGRESS = -32008,
  MODEL_LOAD_FAILED = -32009,
  MODEL_INFERENCE_FAILED = -32010,
  CANCELLED = -32011,
  DOWNLOAD_FAILED = -32012,
  STORAGE_ERROR = -32013,
  RESOURCE_EXHAUSTED = -32014,
  PLAYBACK_FAILED = -32020,
  TRACK_DAMAGED = -32021,
  REMOTE_UNAVAILABLE = -32030,
}

-- How loudly each code is shown: "error" | "warn" | "info" (same words as errors.py).
M.levels = {
  PARSE_ERROR = "error",
  INVALID_REQUEST = "error",
  METHOD_NOT_FOUND = "error",
  INVALID_PARAMS = "error",
  INTERNAL_ERROR = "error",
  BACKEND_NOT_INSTALLED = "warn",
  BACKEND_LOADING = "info",
  QUEUE_FULL = "warn",
  INVALID_DURATION = "error",
  INVALID_BACKEND = "error",
  TRACK_NOT_FOUND = "warn",
  ALREADY_COMPLETE = "info",
  DOWNLOAD_IN_PROGRESS = "info",
  MODEL_LOAD_FAILED = "error",
  MODEL_INFERENCE_FAILED = "error",
  CANCELLED = "info",
  DOWNLOAD_FAILED = "error",
  STORAGE_ERROR = "error",
  RESOURCE_EXHAUSTED = "error",
  PLAYBACK_FAILED = "warn",
  TRACK_DAMAGED = "warn",
  REMOTE_UNAVAILABLE = "error",
}

-- Client-side failures: level and the hint shown when the caller gives none.
M.client_codes = {
  DAEMON_NOT_FOUND = { level = "error", hint = "Run :LofiInstall, or set daemon_cmd in require('lofi').setup()." },
  SPAWN_FAILED = { level = "error", hint = "Check daemon_cmd; :checkhealth lofi shows what was tried." },
  DAEMON_EXITED = { level = "error", hint = "See the daemon log (:LofiLog)." },
  TIMEOUT = { level = "warn", hint = "The daemon did not answer in time; see :LofiLog." },
  BAD_ARGUMENT = { level = "error", hint = "See :help lofi-commands." },
  INSTALL_FAILED = { level = "error", hint = ":checkhealth lofi checks Python and the venv." },
}

local name_by_number = {}
for name, number in pairs(M.codes) do
  name_by_number[number] = name
end

local log_levels = { error = vim.log.levels.ERROR, warn = vim.log.levels.WARN, info = vim.log.levels.INFO }

---@class lofi.Error
---@field code string    the name, e.g. "QUEUE_FULL" or "DAEMON_EXITED"
---@field message string
---@field hint? string   what to do about it
---@field data table     facts from the daemon (queue_length, estimated_wait_sec, ...)

---@param code string
---@return integer vim.log.levels value
function M.level(code)
  local word = M.levels[code] or (M.client_codes[code] and M.client_codes[code].level) or "error"
  return log_levels[word]
end

---@param code string
---@param message string
---@param hint? string
---@param data? table
---@return lofi.Error
function M.new(code, message, hint, data)
  local client = M.client_codes[code]
  return {
    code = code,
    message = message,
    hint = hint or (client and client.hint) or nil,
    data = data or {},
  }
end

--- The `error` member of a JSON-RPC response as a lofi.Error.
---@param rpc_error table {code, message, data?}
---@return lofi.Error
function M.from_rpc(rpc_error)
  local data = type(rpc_error.data) == "table" and rpc_error.data or {}
  local code = data.error_code or name_by_number[rpc_error.code] or "INTERNAL_ERROR"
  return M.new(code, tostring(rpc_error.message or code), data.hint, data)
end

--- A `generation_error` / `download_error` notification as a lofi.Error.
---@param params table {code, message, hint?}
---@return lofi.Error
function M.from_notification(params)
  local code = params.code
  if type(code) == "number" then
    code = name_by_number[code]
  end
  return M.new(code or "INTERNAL_ERROR", tostring(params.message or code), params.hint, params)
end

---@param seconds number
---@return string like "0:42" or "1:02:05"
function M.clock(seconds)
  seconds = math.max(0, math.floor(seconds + 0.5))
  local h, m, s = math.floor(seconds / 3600), math.floor(seconds % 3600 / 60), seconds % 60
  if h > 0 then
    return string.format("%d:%02d:%02d", h, m, s)
  end
  return string.format("%d:%02d", m, s)
end

--- Whether the message or hint already states `fact` (so it is not added twice).
function M.says(err, fact)
  return (err.message or ""):find(fact, 1, true) ~= nil or (err.hint or ""):find(fact, 1, true) ~= nil
end

--- One line for people: the message, the facts that matter for this code, then the hint.
---@param err lofi.Error
---@return string
function M.format(err)
  local text = err.message
  local data = err.data or {}
  if err.code == "QUEUE_FULL" and type(data.estimated_wait_sec) == "number" and not (err.hint or ""):find("%d") then
    text = string.format("%s; a slot frees in about %s", text, M.clock(data.estimated_wait_sec))
  elseif err.code == "INVALID_DURATION" and data.min_duration_sec and data.max_duration_sec
    and not M.says(err, tostring(data.max_duration_sec)) then
    text = string.format("%s (this backend: %s to %s s)", text, data.min_duration_sec, data.max_duration_sec)
  elseif err.code == "INVALID_BACKEND" and type(data.available) == "table" and #data.available > 0
    and not M.says(err, data.available[#data.available]) then
    text = string.format("%s (available: %s)", text, table.concat(data.available, ", "))
  end
  if err.hint and err.hint ~= "" then
    text = text .. (text:find("[.!?]$") and " " or ". ") .. err.hint
  end
  return text
end

--- Is `value` a lofi.Error (as opposed to a result table)?
function M.is_error(value)
  return type(value) == "table" and type(value.code) == "string" and type(value.message) == "string"
end

return M
