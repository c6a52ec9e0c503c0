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
  Lofi = { run = "status", nargs = 0, desc = "The player panel (as :LofiStatus)" },
  LofiStatus = { run = "status", nargs = 0, desc = "The player panel: what plays, the queue, the daemon" },
  LofiPlay = { run = "play", complete = "complete_play", nargs = "?", desc = "Play a track: [id|last]" },
  LofiStop = { run = "stop", nargs = 0, desc = "Stop playback (and the radio)" },
  LofiPause = { run = "pause", nargs = 0, desc = "Pause or resume playback" },
  LofiNext = { run = "next", nargs = 0, desc = "Next track (radio: as soon as it is ready)" },
  LofiVolume = { run = "volume", nargs = "?", desc = "Volume: [N|+N|-N] percent, 0-150" },
  LofiRadio = { run = "radio", complete = "complete_radio", nargs = "*", desc = "Endless music: [prompt]; without one, toggle" },
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
    complete = spec.complete and function(lead, line)
      return require("lofi.commands")[spec.complete](lead, line)
    end or nil,
  })
end

-- <Plug> mappings for the player (none mapped by default; see :help lofi-mappings).
local plugs = {
  ["lofi-pause"] = { "LofiPause", "Pause or resume" },
  ["lofi-next"] = { "LofiNext", "Next track" },
  ["lofi-stop"] = { "LofiStop", "Stop playback" },
  ["lofi-volume-up"] = { "LofiVolume +10", "Volume +10%" },
  ["lofi-volume-down"] = { "LofiVolume -10", "Volume -10%" },
  ["lofi-radio"] = { "LofiRadio", "Radio on/off" },
  ["lofi-status"] = { "LofiStatus", "The player panel" },
  ["lofi-tracks"] = { "LofiTracks", "Pick a track" },
  ["lofi-generate"] = { "LofiGenerate", "Generate a track (asks for the prompt)" },
}
for name, plug in pairs(plugs) do
  vim.keymap.set("n", "<Plug>(" .. name .. ")", "<Cmd>" .. plug[1] .. "<CR>", { desc = "lofi: " .. plug[2] })
end

-- Highlight groups (default links: a colorscheme may set its own).
local function highlights()
  for group, link in pairs({ LofiPlaying = "String", LofiPaused = "Comment", LofiMuted = "WarningMsg",
    LofiGenerating = "Special", LofiPanelKeys = "Comment" }) do
    vim.api.nvim_set_hl(0, group, { link = link, default = true })
  end
end
highlights()
vim.api.nvim_create_autocmd("ColorScheme", { group = vim.api.nvim_create_augroup("lofi.highlights", {}), callback = highlights })
