--- The daemon process: found, spawned lazily, watched, restarted once, stopped on exit.
---
--- libuv callbacks only buffer and schedule; everything else runs on the main loop.
--- stdout goes to the RPC client, stderr to the log file (and a short tail kept for the
--- crash message). Notifications and crashes are handed to whoever called `set_handlers`.
local config = require("lofi.config")
local errors = require("lofi.errors")
local notify = require("lofi.notify")
local rpc = require("lofi.rpc")

local M = {}

-- The protocol version this plugin speaks; `ping` answers with the daemon's.
M.PROTOCOL = 1

local H = {
  proc = nil, ---@type vim.SystemObj|nil
  client = nil, ---@type lofi.RpcClient|nil
  serial = 0, -- which spawn is current; callbacks of older processes are ignored
  stopping = false,
  restarts_left = 1,
  info = nil, -- the last ping result
  stderr_tail = {},
  log = nil, -- open file handle
  handlers = { notification = function() end, crash = function() return 0 end },
}

local STDERR_TAIL_LINES = 20
local RESTART_WINDOW_MS = 60000 -- a restarted daemon that lives this long earns its restart back

---@param handlers {notification?: fun(method: string, params: table), crash?: fun(err: lofi.Error): integer}
function M.set_handlers(handlers)
  H.handlers = vim.tbl_extend("force", H.handlers, handlers)
end

--- How the daemon is started: config, then the plugin's venv, then PATH.
---@return {cmd: string[], source: string}|nil, lofi.Error|nil
function M.resolve()
  local cfg = config.get()
  if cfg.daemon_cmd then
    local cmd = vim.deepcopy(cfg.daemon_cmd)
    if vim.fn.executable(cmd[1]) ~= 1 then
      return nil, errors.new("DAEMON_NOT_FOUND", "daemon_cmd[1] is not executable: " .. cmd[1],
        "Fix daemon_cmd in require('lofi').setup(), or remove it to use the plugin's own daemon.")
    end
    return { cmd = cmd, source = "daemon_cmd" }
  end
  local install = require("lofi.install")
  local venv = install.venv_daemon()
  if vim.fn.executable(venv) == 1 then
    return { cmd = { venv }, source = "plugin venv" }
  end
  local on_path = vim.fn.exepath("lofi-daemon")
  if on_path ~= "" then
    return { cmd = { on_path }, source = "PATH" }
  end
  return nil, errors.new("DAEMON_NOT_FOUND", "lofi-daemon not found (looked at " .. venv .. " and on PATH)")
end

function M.log_file()
  return config.get().log_file or (vim.fn.stdpath("log") .. "/lofi-daemon.log")
end

function M.is_running()
  return H.proc ~= nil
end

function M.pid()
  return H.proc and H.proc.pid or nil
end

--- What the daemon said to `ping` (version, protocol), once it has answered.
function M.info()
  return H.info
end

function H.open_log()
  if H.log then
    return
  end
  local path = M.log_file()
  vim.fn.mkdir(vim.fn.fnamemodify(path, ":h"), "p")
  -- Keep one old log so a crash can still be read after the restart that follows it.
  local stat = vim.uv.fs_stat(path)
  if stat and stat.size > 5 * 1024 * 1024 then
    vim.uv.fs_rename(path, path .. ".1")
  end
  H.log = io.open(path, "a")
end

-- Runs in libuv's fast context: plain Lua only, no vim.api.
function H.on_stderr(serial, data)
  if H.log then
    H.log:write(data)
    H.log:flush()
  end
  if serial ~= H.serial then
    return
  end
  for line in data:gmatch("[^\n]+") do
    table.insert(H.stderr_tail, line)
    if #H.stderr_tail > STDERR_TAIL_LINES then
      table.remove(H.stderr_tail, 1)
    end
  end
end

--- Start the daemon unless it runs. Safe to call often.
---@param opts? {auto?: boolean} auto: this is the automatic restart after a crash
---@return boolean ok, lofi.Error|nil err
function M.start(opts)
  if H.proc then
    return true
  end
  local resolved, err = M.resolve()
  if not resolved then
    return false, err
  end
  if not (opts and opts.auto) then
    H.restarts_left = 1 -- a start the user asked for renews the automatic restart
  end
  H.open_log()
  H.serial = H.serial + 1
  H.stopping = false
  H.stderr_tail = {}
  H.info = nil
  local serial = H.serial
  if H.log then
    H.log:write(string.format("\n==== %s lofi.nvim starts: %s ====\n", os.date("%Y-%m-%d %H:%M:%S"), table.concat(resolved.cmd, " ")))
    H.log:flush()
  end

  local client
  local env = {}
  for k, v in pairs(config.get().daemon_env) do
    env[k] = tostring(v)
  end
  local ok, proc = pcall(vim.system, resolved.cmd, {
    stdin = true,
    env = next(env) and env or nil,
    stdout = function(_, data)
      if data then
        vim.schedule(function()
          if serial == H.serial and client then
            client:feed(data)
          end
        end)
      end
    end,
    stderr = function(_, data)
      if data then
        H.on_stderr(serial, data)
      end
    end,
  }, function(result)
    vim.schedule(function()
      H.on_exit(serial, client, result)
    end)
  end)
  if not ok then
    return false, errors.new("SPAWN_FAILED", "cannot start " .. table.concat(resolved.cmd, " ") .. ": " .. tostring(proc))
  end

  client = rpc.new_client({
    send = function(data)
      proc:write(data)
      return true
    end,
    timeout_ms = config.get().request_timeout_ms,
    on_notification = function(method, params)
      H.handlers.notification(method, params)
    end,
    on_bad_line = function(line, why)
      if H.log then
        H.log:write(string.format("lofi.nvim: ignored a line from the daemon (%s): %s\n", why, line:sub(1, 200)))
        H.log:flush()
      end
    end,
  })
  H.proc, H.client = proc, client
  require("lofi.exit").on_leave("daemon", "lofi: shut the daemon down", function()
    M.stop()
  end)
  client:request("ping", nil, function(ping_err, result)
    if ping_err or serial ~= H.serial then
      return
    end
    H.info = result
    if tostring(result.protocol) ~= tostring(M.PROTOCOL) then
      notify.warn(string.format("daemon speaks protocol %s, this plugin speaks %s. Run :LofiInstall to update the daemon.",
        tostring(result.protocol), tostring(M.PROTOCOL)))
    end
  end)
  if opts and opts.auto then
    vim.defer_fn(function()
      if serial == H.serial and H.proc then
        H.restarts_left = 1
      end
    end, RESTART_WINDOW_MS)
  end
  return true
end

function H.describe_exit(result)
  if result.signal and result.signal ~= 0 then
    return "killed by signal " .. result.signal
  end
  return "exit code " .. tostring(result.code)
end

function H.on_exit(serial, client, result)
  if serial ~= H.serial then
    return
  end
  local expected = H.stopping
  H.proc, H.client, H.info = nil, nil, nil
  local how = H.describe_exit(result)
  local err = errors.new("DAEMON_EXITED", "the daemon exited (" .. how .. ")",
    "See the daemon log: " .. M.log_file())
  if client then
    client:fail_all(err)
  end
  if expected then
    return
  end
  local failed = H.handlers.crash(err) or 0
  local parts = { "the daemon stopped unexpectedly (" .. how .. ")" }
  if failed > 0 then
    parts[#parts + 1] = string.format("%d track%s failed", failed, failed == 1 and "" or "s")
  end
  local last = H.stderr_tail[#H.stderr_tail]
  if last then
    parts[#parts + 1] = "last log line: " .. last
  end
  if config.get().auto_restart and H.restarts_left > 0 then
    H.restarts_left = H.restarts_left - 1
    local ok, start_err = M.start({ auto = true })
    parts[#parts + 1] = ok and "restarted it" or ("could not restart it: " .. start_err.message)
  else
    parts[#parts + 1] = "not restarting it again; the next command starts it"
  end
  notify.show(table.concat(parts, "; ") .. ". Log: " .. M.log_file(), vim.log.levels.ERROR)
end

--- Send a request, starting the daemon first when needed.
---@param method string
---@param params? table
---@param cb? fun(err: lofi.Error|nil, result: any)
---@param opts? {timeout_ms?: integer}
function M.request(method, params, cb, opts)
  cb = cb or function() end
  local ok, err = M.start()
  if not ok then
    cb(err, nil)
    return
  end
  H.client:request(method, params, cb, opts)
end

--- Ask the daemon to shut down, wait up to `timeout_ms`, then kill it.
---@param timeout_ms? integer
function M.stop(timeout_ms)
  local proc, client = H.proc, H.client
  if not proc then
    return
  end
  H.stopping = true
  if client then
    client:request("shutdown", nil, nil, { timeout_ms = 0 })
  end
  pcall(proc.write, proc, nil) -- close stdin: the daemon also exits at EOF
  pcall(proc.wait, proc, timeout_ms or 2000) -- kills it (SIGKILL) when the time is up
  if H.proc == proc then
    H.proc, H.client = nil, nil
  end
end

return M
