-- lofi.nvim commands. Tiny on purpose: the bodies live in lua/lofi/commands.lua and load
-- on first use, so startup costs one table and a loop.
if vim.g.loaded_lofi then
  return
end
vim.g.loaded_lofi = true

if vim.fn.has("nvim-0.10") ~= 1 then
  vim.notify("lofi.nvim needs Neovim 0.10 or newer", vim.log.levels.ERROR)
  return
end

local commands = {
  LofiGenerate = { run = "generate", complete = "complete_generate", nargs = "*", range = true,
    desc = "Generate a track: [prompt] [duration] [key=value ...]" },
  LofiSetup = { run = "setup", complete = "complete_backend", nargs = "?", desc = "Download a backend's model" },
  LofiCancel = { run = "cancel", complete = "complete_cancel", nargs = "?", desc = "Cancel a track (default: the running one)" },
  LofiBackend = { run = "backend", complete = "complete_backend", nargs = "?", desc = "Switch the default backend" },
  LofiStatus = { run = "status", nargs = 0, desc = "Show the daemon's queue and backend" },
  LofiPlay = { run = "play", complete = "complete_play", nargs = "?", desc = "Play a track: [id|last]" },
  LofiStop = { run = "stop", nargs = 0, desc = "Stop playback (and the radio)" },
  LofiPause = { run = "pause", nargs = 0, desc = "Pause or resume playback" },
  LofiNext = { run = "next", nargs = 0, desc = "Next track (radio: as soon as it is ready)" },
  LofiVolume = { run = "volume", nargs = "?", desc = "Volume: [N|+N|-N] percent, 0-150" },
  LofiRadio = { run = "radio", nargs = "*", desc = "Endless music: [prompt]; without one, toggle" },
  LofiTracks = { run = "tracks", nargs = 0, desc = "Pick a track: play, regenerate, delete" },
  LofiInstall = { run = "install", complete = "complete_install", nargs = "*", desc = "Install the daemon into the plugin's venv: [models]" },
  LofiLog = { run = "log", nargs = 0, desc = "Open the daemon log" },
  LofiUnload = { run = "unload", nargs = 0, desc = "Free the model's memory now (after the running job)" },
}

for name, spec in pairs(commands) do
  vim.api.nvim_create_user_command(name, function(o)
    require("lofi.commands")[spec.run](o)
  end, {
    nargs = spec.nargs,
    range = spec.range,
    desc = spec.desc,
    complete = spec.complete and function(lead)
      return require("lofi.commands")[spec.complete](lead)
    end or nil,
  })
end
