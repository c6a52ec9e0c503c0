--- JSON-RPC 2.0 over lines: a pure framer and a transport-agnostic client.
---
--- The framer knows bytes and newlines only; stdout arrives in arbitrary chunks (a line,
--- half a line, a multi-byte character cut in two), so it keeps the partial line between
--- chunks. The client knows ids, callbacks and timeouts; it writes through a `send`
--- function it is given, so tests drive it without any process.
local errors = require("lofi.errors")

local M = {}

--- Split `chunk` into complete lines, given the unfinished line left from earlier chunks.
--- Pure: no state, no I/O. Blank lines are dropped and a trailing "\r" is removed.
---@param pending string
---@param chunk string
---@return string[] lines, string rest
function M.split_lines(pending, chunk)
  local buffer = pending .. chunk
  local lines, start = {}, 1
  while true do
    local newline = buffer:find("\n", start, true)
    if not newline then
      break
    end
    local line = buffer:sub(start, newline - 1)
    if line:sub(-1) == "\r" then
      line = line:sub(1, -2)
    end
    if line ~= "" then
      lines[#lines + 1] = line
    end
    start = newline + 1
  end
  return lines, buffer:sub(start)
end

--- A framer object: `feed(chunk)` returns the lines completed by that chunk.
--- Chunks without a newline are only collected, so a long line sent in many small chunks
--- costs linear time rather than quadratic.
function M.framer()
  local parts = {}
  local self = {}
  function self.feed(chunk)
    if not chunk or chunk == "" then
      return {}
    end
    if not chunk:find("\n", 1, true) then
      parts[#parts + 1] = chunk
      return {}
    end
    local pending = table.concat(parts)
    local lines, rest = M.split_lines(pending, chunk)
    parts = rest ~= "" and { rest } or {}
    return lines
  end
  function self.pending()
    return table.concat(parts)
  end
  return self
end

-- Seeds go up to 2^63-1, past the 2^53 a Lua number holds exactly. Inside Lua a seed of
-- 16+ digits is kept as a string of digits, and written back as a JSON integer.
local BIG_SEED_IN = '("seed"%s*:%s*)(%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d+)'
local BIG_SEED_OUT = '("seed":)"(%d+)"'

--- Decode one line. JSON null becomes nil, so `result.current == nil` when idle.
---@return table|nil message, string|nil err
function M.decode(line)
  line = line:gsub(BIG_SEED_IN, '%1"%2"')
  local ok, message = pcall(vim.json.decode, line, { luanil = { object = true, array = true } })
  if not ok then
    return nil, "not JSON: " .. tostring(message)
  end
  if type(message) ~= "table" or (next(message) ~= nil and vim.islist(message)) then
    return nil, "not a JSON object"
  end
  return message
end

---@param message table
---@return string one line, newline included
function M.encode(message)
  return (vim.json.encode(message):gsub(BIG_SEED_OUT, "%1%2")) .. "\n"
end

-- Empty params must go out as {} (an object), not [] (what an empty Lua table encodes as).
local function as_params(params)
  if params == nil or (type(params) == "table" and next(params) == nil) then
    return vim.empty_dict()
  end
  return params
end

---@class lofi.RpcClient
---@field private send fun(data: string): boolean|nil, string|nil
---@field private pending table<integer, {method: string, cb: function, timer: uv.uv_timer_t|nil}>
---@field private next_id integer
---@field private framer table
---@field private on_notification fun(method: string, params: table)
local Client = {}
Client.__index = Client

---@param opts {send: fun(data: string): (boolean|nil, string|nil), on_notification?: fun(method: string, params: table), timeout_ms?: integer, on_bad_line?: fun(line: string, err: string)}
---@return lofi.RpcClient
function M.new_client(opts)
  return setmetatable({
    send = opts.send,
    on_notification = opts.on_notification or function() end,
    on_bad_line = opts.on_bad_line or function() end,
    on_callback_error = opts.on_callback_error or function(err)
      vim.notify("lofi: internal error in a callback: " .. err, vim.log.levels.ERROR)
    end,
    timeout_ms = opts.timeout_ms or 15000,
    pending = {},
    next_id = 1,
    framer = M.framer(),
  }, Client)
end

local function stop_timer(timer)
  if timer and not timer:is_closing() then
    timer:stop()
    timer:close()
  end
end

--- Send a request. `cb(err, result)` runs exactly once: with the result, the daemon's
--- error, a TIMEOUT, or whatever `fail_all` is given.
---@param method string
---@param params? table
---@param cb? fun(err: lofi.Error|nil, result: any)
---@param opts? {timeout_ms?: integer}
---@return integer|nil id, lofi.Error|nil err
function Client:request(method, params, cb, opts)
  cb = cb or function() end
  local id = self.next_id
  self.next_id = id + 1
  local ok, sent, send_err = pcall(self.send, M.encode({ jsonrpc = "2.0", id = id, method = method, params = as_params(params) }))
  if not ok or sent == false then
    local err = errors.new("DAEMON_EXITED", "cannot write to the daemon: " .. tostring(send_err or sent))
    cb(err, nil)
    return nil, err
  end
  local entry = { method = method, cb = cb }
  local timeout = (opts and opts.timeout_ms) or self.timeout_ms
  if timeout and timeout > 0 then
    entry.timer = vim.uv.new_timer()
    entry.timer:start(timeout, 0, vim.schedule_wrap(function()
      if self.pending[id] ~= entry then
        return
      end
      self.pending[id] = nil
      stop_timer(entry.timer)
      self:call(cb, errors.new("TIMEOUT", string.format("%s got no answer within %.1f s", method, timeout / 1000)), nil)
    end))
  end
  self.pending[id] = entry
  return id
end

--- Send a notification (no id, no answer).
function Client:notify(method, params)
  return pcall(self.send, M.encode({ jsonrpc = "2.0", method = method, params = as_params(params) }))
end

--- Feed a chunk of the daemon's stdout.
function Client:feed(chunk)
  for _, line in ipairs(self.framer.feed(chunk)) do
    self:handle_line(line)
  end
end

function Client:handle_line(line)
  local message, err = M.decode(line)
  if not message then
    self.on_bad_line(line, err)
    return
  end
  self:handle_message(message)
end

function Client:handle_message(message)
  if message.method ~= nil and message.id == nil then
    self:call(self.on_notification, message.method, message.params or {})
    return
  end
  local entry = message.id ~= nil and self.pending[message.id]
  if not entry then
    -- A late answer to a request that timed out, or something we never asked.
    self.on_bad_line(vim.json.encode(message), "response to an unknown request id")
    return
  end
  self.pending[message.id] = nil
  stop_timer(entry.timer)
  if message.error ~= nil then
    self:call(entry.cb, errors.from_rpc(message.error), nil)
  else
    self:call(entry.cb, nil, message.result)
  end
end

-- A failing callback must not stop the lines after it from being handled.
function Client:call(cb, ...)
  local ok, err = xpcall(cb, debug.traceback, ...)
  if not ok then
    self.on_callback_error(err)
  end
end

--- End every waiting request with `err` (the daemon died, or we are shutting down).
---@param err lofi.Error
function Client:fail_all(err)
  local pending = self.pending
  self.pending = {}
  local ids = vim.tbl_keys(pending)
  table.sort(ids)
  for _, id in ipairs(ids) do
    stop_timer(pending[id].timer)
    self:call(pending[id].cb, err, nil)
  end
end

---@return integer
function Client:pending_count()
  return vim.tbl_count(self.pending)
end

M.Client = Client

return M
