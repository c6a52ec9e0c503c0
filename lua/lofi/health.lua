--- :checkhealth lofi
---
--- Neovim, the daemon command, the Python behind it (version, torch, device, cache dir and
--- free disk), the daemon's answer to ping (protocol), each backend's state and size, and
--- a player. The Python facts come from a short probe run with the daemon's own Python,
--- so they describe what the daemon will see (its env, its cache dir).
local M = {}
local H = {}

H.PROBE = [[
import json, platform, shutil, sys
out = {"python": platform.python_version(), "executable": sys.executable}
plan = None
try:
    import lofi_daemon
    from lofi_daemon.settings import Settings
    out["daemon_version"] = lofi_daemon.__version__
    out["protocol"] = lofi_daemon.PROTOCOL_VERSION
    settings = Settings.load()
    out["cache_dir"] = str(settings.cache_dir)
    probe = settings.cache_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    out["free_bytes"] = shutil.disk_usage(probe).free
    plan = settings.device_plan
except Exception as exc:
    out["daemon_error"] = f"{type(exc).__name__}: {exc}"
try:
    import torch
    out["torch"] = torch.__version__
    out["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    out["mps"] = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if plan is not None:
        from lofi_daemon.device import resolve
        chosen = resolve(plan)
        out["device"], out["dtype"] = chosen.device, chosen.dtype_name
except ImportError:
    out["torch"] = None
except Exception as exc:
    out["torch_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
]]

local FREE_DISK_WARN_BYTES = 10e9 -- ACE-Step's weights are 8.3 GB (10^9 bytes)

function H.size(bytes)
  if type(bytes) ~= "number" then
    return "?"
  end
  if bytes >= 1e9 then
    return string.format("%.1f GB", bytes / 1e9)
  end
  return string.format("%.0f MB", bytes / 1e6)
end

-- The Python that runs the daemon, when it can be known from here (not through ssh).
function H.daemon_python(resolved)
  local install = require("lofi.install")
  if resolved.source == "plugin venv" then
    return install.venv_python()
  end
  local exe = vim.fn.exepath(resolved.cmd[1])
  if exe == "" then
    return nil
  end
  if vim.fn.fnamemodify(exe, ":t"):match("^python[%d.]*$") then
    return exe
  end
  local file = io.open(exe, "r")
  local first = file and file:read("*l") or ""
  if file then
    file:close()
  end
  local shebang = first:match("^#!%s*(%S*python[%d.]*)%s*$")
  if shebang and vim.fn.executable(shebang) == 1 then
    return shebang
  end
end

function H.probe(python)
  local env = {}
  for k, v in pairs(require("lofi.config").get().daemon_env) do
    env[k] = tostring(v)
  end
  local ok, result = pcall(function()
    -- Importing torch cold can take a while, but :checkhealth must not hang for minutes.
    return vim.system({ python, "-c", H.PROBE }, { text = true, env = next(env) and env or nil }):wait(30000)
  end)
  if not ok then
    return nil, tostring(result)
  end
  if result.code == 124 then
    return nil, "the Python probe did not finish within 30 s"
  end
  if result.code ~= 0 then
    return nil, vim.trim(result.stderr or "")
  end
  local decoded_ok, info = pcall(vim.json.decode, vim.trim(result.stdout or ""), { luanil = { object = true } })
  if not decoded_ok then
    return nil, "unexpected probe output: " .. (result.stdout or "")
  end
  return info
end

-- A request answered synchronously (health checks may block).
function H.call(method, timeout_ms)
  local done, err, result = false, nil, nil
  require("lofi").request(method, nil, function(e, r)
    done, err, result = true, e, r
  end)
  vim.wait(timeout_ms, function() return done end, 20)
  if not done then
    return nil, require("lofi.errors").new("TIMEOUT", method .. " got no answer within " .. timeout_ms / 1000 .. " s")
  end
  return result, err
end

-- Neovim before 0.9 has no vim.health (its checks use require("health").report_*): say
-- that this Neovim is too old in whichever API exists, and stop.
function H.too_old()
  local v = vim.version()
  local text = string.format("Neovim %d.%d.%d is too old: lofi.nvim needs Neovim 0.10 or newer", v.major, v.minor, v.patch)
  local h = vim.health
  if h and h.start then
    h.start("lofi.nvim: Neovim")
    h.error(text)
    return
  end
  local ok, old = pcall(require, "health")
  if ok and type(old) == "table" and old.report_start then
    old.report_start("lofi.nvim: Neovim")
    old.report_error(text)
  else
    vim.notify("lofi: " .. text, vim.log.levels.ERROR)
  end
end

function H.check_neovim(h)
  h.start("lofi.nvim: Neovim")
  local v = vim.version()
  local version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.10") == 1 then
    h.ok("Neovim " .. version)
  else
    h.error("Neovim " .. version .. " is too old", { "lofi.nvim needs Neovim 0.10 or newer" })
  end
  H.check_live_progress(h)
end

-- The sink live progress goes to, tried for real where it can fail (Neovim's own messages).
H.SINK_NAMES = {
  fidget = "fidget.nvim",
  native = "Neovim's progress messages (nvim_echo kind=progress)",
  notify = "vim.notify (start and finish; live when the notifier can replace messages)",
}

function H.check_live_progress(h)
  local checked = require("lofi.progress").check_live_sink()
  if checked.error then
    h.warn(checked.error, { "Progress falls back to " .. (H.SINK_NAMES[checked.sink] or "the statusline only") .. "." })
  end
  if checked.sink then
    h.ok("live progress: " .. H.SINK_NAMES[checked.sink])
  else
    h.info("live progress: statusline and User events only (progress.fidget/native/notify are off)")
  end
end

function H.check_python(h, resolved)
  local python = H.daemon_python(resolved)
  if not python then
    h.info("the daemon's Python is not visible from here (custom daemon_cmd); Python checks skipped")
    return
  end
  local info, err = H.probe(python)
  if not info then
    h.error("cannot run " .. python .. ": " .. err, { "Run :LofiInstall to (re)create the plugin's venv." })
    return
  end
  h.ok(string.format("Python %s (%s)", info.python, info.executable))
  if info.daemon_error then
    h.error("lofi_daemon does not import: " .. info.daemon_error, { "Run :LofiInstall." })
  elseif tostring(info.protocol) ~= tostring(require("lofi.daemon").PROTOCOL) then
    h.error(string.format("lofi_daemon %s speaks protocol %s; this plugin speaks %s", info.daemon_version,
      tostring(info.protocol), tostring(require("lofi.daemon").PROTOCOL)), { "Run :LofiInstall to update the daemon." })
  else
    h.ok(string.format("lofi_daemon %s, protocol %s", info.daemon_version, tostring(info.protocol)))
  end
  if info.torch == nil and not info.torch_error then
    h.warn("torch is not installed: only the procedural backend works",
      { "Run :LofiInstall models for MusicGen and ACE-Step." })
  elseif info.torch_error then
    h.warn("torch is broken: " .. info.torch_error)
  else
    local devices = {}
    if info.cuda then
      devices[#devices + 1] = "CUDA (" .. info.cuda .. ")"
    end
    if info.mps then
      devices[#devices + 1] = "MPS"
    end
    devices[#devices + 1] = "CPU"
    h.ok(string.format("torch %s; devices: %s", info.torch, table.concat(devices, ", ")))
    if info.device then
      local line = string.format("the daemon will use %s (%s)", info.device, info.dtype)
      if info.device == "cpu" then
        h.warn(line, { "MusicGen and ACE-Step are slow on CPU; a CUDA or Apple GPU is much faster." })
      else
        h.ok(line)
      end
    end
  end
  if info.cache_dir then
    local line = string.format("cache %s: %s free", info.cache_dir, H.size(info.free_bytes))
    if type(info.free_bytes) == "number" and info.free_bytes < FREE_DISK_WARN_BYTES then
      h.warn(line, { "ACE-Step needs 8.3 GB; set LOFI_CACHE_DIR to a bigger disk." })
    else
      h.ok(line)
    end
  end
end

function H.check_daemon(h)
  h.start("lofi.nvim: daemon")
  local daemon = require("lofi.daemon")
  local resolved, err = daemon.resolve()
  if not resolved then
    h.error(err.message, { err.hint })
    return
  end
  h.ok(string.format("daemon command: %s (from %s)", table.concat(resolved.cmd, " "), resolved.source))
  H.check_python(h, resolved)

  local pong, ping_err = H.call("ping", 30000)
  if not pong then
    h.error("the daemon does not answer ping: " .. require("lofi.errors").format(ping_err),
      { "Log: " .. daemon.log_file() })
    return
  end
  if tostring(pong.protocol) == tostring(daemon.PROTOCOL) then
    h.ok(string.format("daemon answers: version %s, protocol %s", tostring(pong.version), tostring(pong.protocol)))
  else
    h.error(string.format("daemon speaks protocol %s, the plugin %s", tostring(pong.protocol), tostring(daemon.PROTOCOL)),
      { "Run :LofiInstall to update the daemon." })
  end
  H.check_transport(h)
  require("lofi.memory").health(h, (H.call("daemon_info", 5000)))

  h.start("lofi.nvim: backends")
  local result, backends_err = H.call("get_backends", 30000)
  if not result then
    h.error("get_backends failed: " .. require("lofi.errors").format(backends_err))
    return
  end
  for _, b in ipairs(result.backends or {}) do
    local default = b.name == result.default_backend and " [default]" or ""
    local size = (b.size_bytes and b.size_bytes > 0) and (", " .. H.size(b.size_bytes)) or ""
    local words = require("lofi.commands").status_words[b.status] or tostring(b.status)
    local line = string.format("%s: %s%s%s", b.name, words, size, default)
    if b.status == "error" then
      h.warn(line .. (b.error and (" - " .. b.error) or ""), { b.hint })
    elseif b.status == "not_installed" and type(b.missing_libraries) == "table" and #b.missing_libraries > 0 then
      h.info(string.format("%s - needs %s: first :LofiInstall models, then :LofiSetup %s", line,
        table.concat(b.missing_libraries, ", "), (b.name:gsub("_", "-"))))
    elseif b.status == "not_installed" then
      h.info(line .. " - download with :LofiSetup " .. b.name:gsub("_", "-"))
    else
      h.ok(line)
    end
    if type(b.licence) == "string" and b.licence ~= "" then
      h.info(string.format("%s licence: %s", b.name, b.licence))
    end
  end
end

-- How this Neovim reaches the daemon (owned by the transport; see docs/protocol.md "Transport").
function H.check_transport(h)
  local daemon = require("lofi.daemon")
  local t = daemon.transport()
  if t.mode ~= "socket" then
    h.ok("transport: stdio (a private daemon for this Neovim)")
    return
  end
  local info, err = H.call("daemon_info", 5000)
  if not info then
    h.warn("shared daemon on " .. t.socket_path .. " does not answer daemon_info: " .. require("lofi.errors").format(err))
    return
  end
  h.ok("transport: shared daemon on " .. tostring(info.socket_path or t.socket_path))
  h.ok(string.format("daemon pid %s, up %s, %s connected client%s (it exits %s s after the last one leaves)",
    tostring(info.pid), H.uptime(info.uptime_sec), tostring(info.clients), info.clients == 1 and "" or "s",
    tostring(info.idle_exit_sec)))
end

-- The remote generator (docs/remote.md): asking connects to it, as ssh may take a while.
function H.check_remote(h)
  local cfg = require("lofi.config").get()
  local status, err = H.call("remote_status", 70000)
  if not status then
    if cfg.generator then
      h.warn("generator: the daemon did not answer remote_status: " .. require("lofi.errors").format(err))
    end
    return
  end
  if not status.configured then
    if cfg.generator then
      h.warn("generator is set, but the running daemon was started without it",
        { "A shared daemon keeps the environment it started with: stop it with :lua require('lofi.daemon').stop({ force = true }), and the next request starts it again." })
    end
    return
  end
  h.start("lofi.nvim: remote generator")
  local command = table.concat(status.command or {}, " ")
  local sent = type(status.backends_sent) == "table" and table.concat(status.backends_sent, ", ")
    or tostring(status.backends_sent)
  if not status.reachable then
    h.error("generator " .. command .. " is not reachable: " .. tostring(status.error),
      { status.hint or "Run the command in a terminal to see what ssh says." })
    h.info("jobs for " .. sent .. " fail until it is back; the others run here")
    return
  end
  h.ok(string.format("generator %s: reachable, lofi-daemon %s (protocol %s)", command,
    tostring(status.version), tostring(status.protocol)))
  local gpus = type(status.gpu) == "table" and #status.gpu > 0 and table.concat(status.gpu, ", ") or "none found"
  h.info("GPU there: " .. gpus)
  local installed = type(status.installed) == "table" and table.concat(status.installed, ", ") or ""
  h.info("backends installed there: " .. (installed ~= "" and installed or "none") .. "; sent there: " .. sent)
end

function H.uptime(seconds)
  seconds = math.floor(tonumber(seconds) or 0)
  if seconds < 60 then
    return seconds .. " s"
  end
  local h, m = math.floor(seconds / 3600), math.floor(seconds / 60) % 60
  return h > 0 and string.format("%d h %02d min", h, m) or string.format("%d min %02d s", m, seconds % 60)
end

function H.check_player(h)
  h.start("lofi.nvim: playback (the daemon plays; see :help lofi-playback)")
  local sink = require("lofi.config").get().player.sink
  if sink then
    h.ok("player.sink = " .. sink)
    return
  end
  local found = vim.tbl_filter(function(name) return vim.fn.executable(name) == 1 end,
    { "pw-cat", "paplay", "aplay", "mpv", "ffplay" })
  if #found > 0 then
    h.ok("audio outputs on PATH: " .. table.concat(found, ", ") .. " (sounddevice is tried first when installed)")
  else
    h.warn("no pw-cat, paplay, aplay, mpv or ffplay on PATH", {
      "Install mpv (or pipewire / pulseaudio tools), or pip install sounddevice into the daemon's venv.",
      "Tracks are still written to disk.",
    })
  end
end

function M.check()
  local h = vim.health
  if not h or vim.fn.has("nvim-0.10") ~= 1 then
    return H.too_old()
  end
  H.check_neovim(h)
  H.check_daemon(h)
  H.check_remote(h)
  H.check_player(h)
end

return M
