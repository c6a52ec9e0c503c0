--- The daemon: reached over a shared unix socket (default) or spawned over stdio.
---
--- Socket (config `daemon.socket`, the default): connect to the user's one daemon with a
--- vim.uv pipe; when nobody listens, start it detached (`lofi-daemon --socket PATH`) and keep
--- connecting until it does. It outlives this Neovim and exits by itself once no client is
--- left for `daemon.idle_exit_sec`. Stdio (`daemon_cmd`, or `daemon.socket = false`): a
--- private daemon on the process's stdin/stdout, stopped when Neovim quits.
---
--- Either way a lost daemon is restarted (or reconnected) once by itself, and the user is told
--- once. libuv callbacks only buffer and schedule; everything else runs on the main loop.
local config = require("lofi.config")
local errors = require("lofi.errors")
local notify = require("lofi.notify")
local rpc = require("lofi.rpc")

local M = {}

-- The protocol version this plugin speaks; `ping` answers with the daemon's.
M.PROTOCOL = 1

local H = {
  conn = nil, -- {kind = "stdio", proc} | {kind = "socket", path, pipe, queue, spawned, closed}
  client = nil, ---@type lofi.RpcClient|nil
  serial = 0, -- which connection is current; callbacks of older ones are ignored
  stopping = false,
  restarts_left = 1,
  info = nil, -- the last ping result
  daemon_info = nil, -- the last daemon_info result (pid, uptime, clients)
  since_request = {}, -- stderr lines of the current process written after the last request
  log = nil, -- open file handle
  handlers = { notification = function() end, crash = function() return 0 end },
}

local STDERR_TAIL_LINES = 20
local RESTART_WINDOW_MS = 60000 -- a restarted daemon that lives this long earns its restart back
local CONNECT_WAIT_MS = 30000 -- how long a freshly started shared daemon may take to listen
local CONNECT_RETRY_MS = 50
local MAX_SOCKET_PATH_BYTES = 100 -- as src/lofi_daemon/transport/paths.py

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

--- "socket" (the shared daemon) or "stdio" (a private one: daemon_cmd, or daemon.socket = false).
function M.mode()
  local cfg = config.get()
  if cfg.daemon_cmd or not cfg.daemon.socket then
    return "stdio"
  end
  return "socket"
end

-- What the daemon will see in its environment (daemon_env wins over Neovim's).
local function daemon_env(key)
  local value = config.get().daemon_env[key]
  if value ~= nil then
    return tostring(value)
  end
  local env = vim.env[key]
  return env ~= "" and env or nil
end

local function abspath(path)
  local full = vim.fs.normalize(vim.fn.fnamemodify(path, ":p"))
  return (#full > 1 and full:gsub("/+$", "")) or full
end

--- The socket of the user's daemon: the same rule as transport/paths.py (a test keeps them equal).
---@return string
function M.socket_path()
  local cfg = config.get()
  if cfg.daemon.socket_path then
    return cfg.daemon.socket_path
  end
  if daemon_env("LOFI_SOCKET") then
    return daemon_env("LOFI_SOCKET")
  end
  local custom = daemon_env("LOFI_CACHE_DIR")
  local name = custom and ("daemon-" .. vim.fn.sha256(abspath(custom)):sub(1, 12) .. ".sock") or "daemon.sock"
  local mac = vim.uv.os_uname().sysname == "Darwin"
  local runtime = daemon_env("XDG_RUNTIME_DIR") or (mac and daemon_env("TMPDIR") or nil)
  local path
  if runtime and runtime:sub(1, 1) == "/" and vim.fn.isdirectory(runtime) == 1 then
    path = runtime:gsub("/+$", "") .. "/lofi.nvim/" .. name
  else
    local cache = custom and abspath(custom)
    if not cache then
      local home = vim.uv.os_homedir()
      local xdg = daemon_env("XDG_CACHE_HOME") -- as platformdirs: any non-blank value
      cache = mac and (home .. "/Library/Caches/lofi.nvim")
        or ((xdg and xdg:match("%S")) and abspath(xdg) or (home .. "/.cache")) .. "/lofi.nvim"
    end
    path = cache .. "/run/" .. name
  end
  if #path > MAX_SOCKET_PATH_BYTES then
    local tmp = (daemon_env("TMPDIR") or "/tmp"):gsub("/+$", "")
    path = tmp .. "/lofi.nvim-" .. vim.uv.getuid() .. "/" .. name
  end
  return path
end

function M.log_file()
  return config.get().log_file or (vim.fn.stdpath("log") .. "/lofi-daemon.log")
end

function M.is_running()
  return H.conn ~= nil
end

--- The daemon's pid: the process we spawned (stdio), or what the shared daemon said it is.
function M.pid()
  local conn = H.conn
  if not conn then
    return nil
  end
  if conn.kind == "stdio" then
    return conn.proc.pid
  end
  return H.daemon_info and H.daemon_info.pid or nil
end

--- What the daemon said to `ping` (version, protocol), once it has answered.
function M.info()
  return H.info
end

--- How this Neovim reaches its daemon, for :checkhealth and status().
---@return {mode: string, socket_path: string|nil, connected: boolean, daemon: table|nil}
function M.transport()
  local conn = H.conn
  return {
    mode = M.mode(),
    socket_path = M.mode() == "socket" and M.socket_path() or nil,
    connected = conn ~= nil and (conn.kind == "stdio" or conn.pipe ~= nil),
    daemon = H.daemon_info,
  }
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
  vim.uv.fs_chmod(path, 384) -- 0600: the daemon's stderr holds prompts and paths (docs/reliability.md)
end

function H.log_line(text)
  if H.log then
    H.log:write(text)
    H.log:flush()
  end
end

-- Runs in libuv's fast context: plain Lua only, no vim.api.
function H.on_stderr(serial, data)
  H.log_line(data)
  if serial ~= H.serial then
    return
  end
  for line in data:gmatch("[^\n]+") do
    table.insert(H.since_request, line)
    if #H.since_request > STDERR_TAIL_LINES then
      table.remove(H.since_request, 1)
    end
  end
end

function H.new_client(serial, send)
  return rpc.new_client({
    send = send,
    timeout_ms = config.get().request_timeout_ms,
    on_notification = function(method, params)
      H.handlers.notification(method, params)
    end,
    on_bad_line = function(line, why)
      H.log_line(string.format("lofi.nvim: ignored a line from the daemon (%s): %s\n", why, line:sub(1, 200)))
    end,
  })
end

-- After connecting: the protocol check, and (socket) who the daemon is.
function H.greet(serial)
  H.client:request("ping", nil, function(ping_err, result)
    if ping_err or serial ~= H.serial then
      return
    end
    H.info = result
    if tostring(result.protocol) ~= tostring(M.PROTOCOL) then
      notify.warn(string.format("daemon speaks protocol %s, this plugin speaks %s. Run :LofiInstall to update the daemon.",
        tostring(result.protocol), tostring(M.PROTOCOL)))
    end
  end)
  if H.conn and H.conn.kind == "socket" then
    M.refresh_info()
    H.client:request("get_status", nil, function(err, status) -- jobs other clients started
      if not err and serial == H.serial and type(status) == "table" then
        require("lofi.jobs").adopt(status)
      end
    end)
  end
end

--- Ask the shared daemon who it is (pid, uptime, clients); `cb(err, info)`.
--- Forget the connection and what it told us (its info would be stale after it).
function H.forget()
  H.conn, H.client, H.info, H.daemon_info = nil, nil, nil, nil
end

function M.refresh_info(cb)
  local serial = H.serial
  if not H.client then
    return cb and cb(errors.new("DAEMON_EXITED", "not connected to the daemon"), nil)
  end
  H.client:request("daemon_info", nil, function(err, result)
    if not err and serial == H.serial then
      H.daemon_info = result
    end
    if cb then
      cb(err, result)
    end
  end)
end

--- Start (or connect to) the daemon unless that is done. Safe to call often.
---@param opts? {auto?: boolean} auto: this is the automatic restart after a crash
---@return boolean ok, lofi.Error|nil err
function M.start(opts)
  if H.conn then
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
  H.since_request = {}
  H.info, H.daemon_info = nil, nil
  local ok, start_err
  if M.mode() == "socket" then
    ok, start_err = H.start_socket(H.serial, resolved)
  else
    ok, start_err = H.start_stdio(H.serial, resolved)
  end
  if not ok then
    return false, start_err
  end
  require("lofi.exit").on_leave("daemon", "lofi: leave the daemon", function()
    M.stop()
  end)
  H.greet(H.serial)
  if opts and opts.auto then
    local serial = H.serial
    vim.defer_fn(function()
      if serial == H.serial and H.conn then
        H.restarts_left = 1
      end
    end, RESTART_WINDOW_MS)
  end
  return true
end

-- ----------------------------------------------------------------------------- stdio

function H.start_stdio(serial, resolved)
  H.log_line(string.format("\n==== %s lofi.nvim starts: %s ====\n", os.date("%Y-%m-%d %H:%M:%S"), table.concat(resolved.cmd, " ")))
  local client
  local env = {}
  for k, v in pairs(config.get().daemon_env) do
    env[k] = tostring(v)
  end
  require("lofi.memory").daemon_env(env, config.get())
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
  client = H.new_client(serial, function(data)
    proc:write(data)
    return true
  end)
  H.conn, H.client = { kind = "stdio", proc = proc }, client
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
  local how = H.describe_exit(result)
  -- Only what this process wrote after the last request can explain its end.
  local last = H.since_request[#H.since_request]
  H.lost(client, "the daemon exited (" .. how .. ")", "the daemon stopped unexpectedly (" .. how .. ")",
    last and ("last log line: " .. last) or "it wrote nothing after the last request")
end

-- ----------------------------------------------------------------------------- socket

-- The folder of the socket must be ours alone: a socket planted in a folder others can write to
-- (a /tmp fallback, a misconfigured socket_path) could be anyone's, and prompts are private.
---@return lofi.Error|nil
function H.unsafe_folder(path)
  local dir = vim.fs.dirname(path)
  local st = vim.uv.fs_lstat(dir)
  if not st then
    return nil -- the daemon creates it, 0700
  end
  local problem
  if st.type ~= "directory" then
    problem = "is a " .. st.type .. ", not a folder"
  elseif st.uid ~= vim.uv.getuid() then
    problem = "belongs to uid " .. st.uid
  elseif bit.band(st.mode, 18) ~= 0 then -- 0o022: group or others may write
    problem = string.format("can be written by others (mode %o)", bit.band(st.mode, 511))
  end
  if problem then
    return errors.new("DAEMON_NOT_FOUND", "not connecting to " .. path .. ": its folder " .. problem,
      "Remove " .. dir .. " or set daemon.socket_path to a folder only you can write.")
  end
end

function H.start_socket(serial, resolved)
  local path = M.socket_path()
  local unsafe = H.unsafe_folder(path)
  if unsafe then
    return false, unsafe
  end
  local conn = { kind = "socket", path = path, queue = {}, unconfirmed = {}, resolved = resolved, started = vim.uv.now() }
  H.conn = conn
  H.client = H.new_client(serial, function(data)
    if conn.closed then
      return false, "not connected"
    end
    if conn.pipe then
      conn.pipe:write(data)
      if not conn.established then
        table.insert(conn.unconfirmed, data) -- resent if this connection dies before it answers
      end
    else
      table.insert(conn.queue, data) -- sent as soon as the connection is up
    end
    return true
  end)
  H.try_connect(serial, conn)
  return true
end

function H.try_connect(serial, conn)
  local pipe = vim.uv.new_pipe(false)
  pipe:connect(conn.path, function(connect_err)
    vim.schedule(function()
      if serial ~= H.serial or conn.closed then
        pipe:close()
        return
      end
      if connect_err then
        pipe:close()
        return H.retry_connect(serial, conn, connect_err)
      end
      H.connected(serial, conn, pipe)
    end)
  end)
end

function H.retry_connect(serial, conn, why)
  if not conn.spawned then
    local ok, spawn_err = H.spawn(serial, conn)
    if not ok then
      return H.connect_failed(serial, spawn_err)
    end
  end
  if conn.spawn_failed then
    return H.connect_failed(serial, conn.spawn_failed)
  end
  if vim.uv.now() - conn.started > CONNECT_WAIT_MS then
    return H.connect_failed(serial, errors.new("DAEMON_EXITED",
      string.format("no daemon listens on %s after %d s (%s)", conn.path, CONNECT_WAIT_MS / 1000, tostring(why)),
      "See the daemon log: " .. M.log_file()))
  end
  vim.defer_fn(function()
    if serial == H.serial and not conn.closed then
      H.try_connect(serial, conn)
    end
  end, CONNECT_RETRY_MS)
end

-- Start `lofi-daemon --socket PATH` in its own session, so it outlives this Neovim.
-- Several Neovims may do this at once: the daemon's life lock keeps one, the rest exit.
function H.spawn(serial, conn)
  local cfg = config.get()
  local cmd = vim.list_extend(vim.deepcopy(conn.resolved.cmd),
    { "--socket", conn.path, "--idle-exit-sec", tostring(cfg.daemon.idle_exit_sec) })
  H.log_line(string.format("\n==== %s lofi.nvim starts the shared daemon: %s ====\n", os.date("%Y-%m-%d %H:%M:%S"),
    table.concat(cmd, " ")))
  local env = vim.fn.environ()
  for k, v in pairs(cfg.daemon_env) do
    env[k] = tostring(v)
  end
  require("lofi.memory").daemon_env(env, cfg)
  local env_list = {}
  for k, v in pairs(env) do
    env_list[#env_list + 1] = k .. "=" .. v
  end
  local null = vim.uv.fs_open("/dev/null", "r+", 0)
  local logfd = vim.uv.fs_open(M.log_file(), "a", 384) -- 0600, as the daemon's own log
  vim.uv.fs_chmod(M.log_file(), 384)
  local handle, pid_or_err
  handle, pid_or_err = vim.uv.spawn(cmd[1], {
    args = vim.list_slice(cmd, 2),
    env = env_list,
    stdio = { null, null, logfd or null },
    detached = true,
  }, function(code, signal)
    if handle then
      handle:close()
    end
    vim.schedule(function()
      if serial == H.serial and not conn.pipe and code ~= 0 then
        conn.spawn_failed = errors.new("SPAWN_FAILED", string.format("the daemon exited (%s) before it listened on %s",
          signal ~= 0 and ("signal " .. signal) or ("exit code " .. code), conn.path), "See the daemon log: " .. M.log_file())
      end
    end)
  end)
  for _, fd in ipairs({ null, logfd }) do
    if fd then
      vim.uv.fs_close(fd)
    end
  end
  if not handle then
    return false, errors.new("SPAWN_FAILED", "cannot start " .. table.concat(cmd, " ") .. ": " .. tostring(pid_or_err))
  end
  handle:unref() -- Neovim may quit while it runs
  conn.spawned = pid_or_err
  return true
end

-- A connection counts as established once the daemon has said something on it. Until then a
-- drop is just a failed attempt (e.g. the backlog of a daemon that was being killed): what was
-- sent is queued again and connecting goes on.
function H.connected(serial, conn, pipe)
  conn.pipe = pipe
  pipe:read_start(function(read_err, data)
    if data then
      vim.schedule(function()
        if serial == H.serial and H.client and conn.pipe == pipe then
          conn.established, conn.unconfirmed = true, {}
          H.client:feed(data)
        end
      end)
    else
      vim.schedule(function()
        if conn.pipe == pipe then
          H.on_disconnect(serial, read_err)
        end
      end)
    end
  end)
  local queued = conn.queue
  conn.queue = {}
  for _, data in ipairs(queued) do
    pipe:write(data)
    table.insert(conn.unconfirmed, data)
  end
end

function H.close_conn(conn)
  conn.closed = true
  if conn.pipe and not conn.pipe:is_closing() then
    conn.pipe:read_stop()
    conn.pipe:close()
  end
end

function H.connect_failed(serial, err)
  if serial ~= H.serial then
    return
  end
  local conn, client = H.conn, H.client
  H.forget()
  if conn then
    H.close_conn(conn)
  end
  if client then
    client:fail_all(err)
  end
end

function H.on_disconnect(serial, read_err)
  if serial ~= H.serial or not H.conn then
    return
  end
  local conn = H.conn
  if not conn.established then
    if not conn.pipe:is_closing() then
      conn.pipe:read_stop()
      conn.pipe:close()
    end
    conn.pipe = nil
    conn.queue, conn.unconfirmed = vim.list_extend(conn.unconfirmed, conn.queue), {}
    return H.retry_connect(serial, conn, read_err or "closed before it answered")
  end
  local client = H.client
  H.close_conn(H.conn)
  local why = read_err and ("read error: " .. tostring(read_err)) or "the daemon closed it"
  H.lost(client, "lost the connection to the daemon (" .. why .. ")",
    "lost the connection to the shared daemon (" .. why .. ")", nil)
end

-- ----------------------------------------------------------------------------- both

-- The daemon is gone (or our line to it): fail what waits, tell the user once, come back once.
function H.lost(client, what, headline, detail)
  local expected = H.stopping
  local socket = H.conn and H.conn.kind == "socket"
  H.forget()
  local err = errors.new("DAEMON_EXITED", what, "See the daemon log: " .. M.log_file())
  if client then
    client:fail_all(err)
  end
  if expected then
    return
  end
  local failed = H.handlers.crash(err) or 0
  local parts = { headline }
  if failed > 0 then
    parts[#parts + 1] = string.format("%d track%s failed", failed, failed == 1 and "" or "s")
  end
  if detail then
    parts[#parts + 1] = detail
  end
  if config.get().auto_restart and H.restarts_left > 0 then
    H.restarts_left = H.restarts_left - 1
    local ok, start_err = M.start({ auto = true })
    if not ok then
      parts[#parts + 1] = "could not restart it: " .. start_err.message
    else
      parts[#parts + 1] = socket and "reconnecting (starting it again if needed)" or "restarted it"
    end
  else
    parts[#parts + 1] = socket and "not reconnecting again; the next command reconnects"
      or "not restarting it again; the next command starts it"
  end
  notify.show(table.concat(parts, "; ") .. ". Log: " .. M.log_file(), vim.log.levels.ERROR)
end

--- Send a request, starting (or connecting to) the daemon first when needed.
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
  H.since_request = {} -- a crash from here on is explained by what follows
  H.client:request(method, params, cb, opts)
end

--- Leave the daemon. Stdio: ask it to shut down, wait up to `timeout_ms`, then kill it.
--- Socket: close this connection (the daemon serves the others and exits when none is left);
--- with `force`, ask the shared daemon itself to stop (e.g. after :LofiInstall updated it).
---@param opts? integer|{timeout_ms?: integer, force?: boolean}
function M.stop(opts)
  if type(opts) == "number" then
    opts = { timeout_ms = opts }
  end
  opts = opts or {}
  local conn, client = H.conn, H.client
  if not conn then
    return
  end
  H.stopping = true
  if conn.kind == "socket" then
    if opts.force and client and conn.pipe then
      local done = false
      client:request("shutdown", { force = true }, function()
        done = true
      end, { timeout_ms = opts.timeout_ms or 2000 })
      vim.wait(opts.timeout_ms or 2000, function() return done end, 10)
    end
    H.serial = H.serial + 1 -- late callbacks of this connection are ignored
    H.close_conn(conn)
    H.forget()
    if client then
      client:fail_all(errors.new("DAEMON_EXITED", "disconnected from the daemon"))
    end
    return
  end
  local proc = conn.proc
  if client then
    client:request("shutdown", nil, nil, { timeout_ms = 0 })
  end
  pcall(proc.write, proc, nil) -- close stdin: the daemon also exits at EOF
  pcall(proc.wait, proc, opts.timeout_ms or 2000) -- kills it (SIGKILL) when the time is up
  if H.conn == conn then
    H.forget()
  end
end

return M
