-- setup() validation: every bad field is named by its dotted path.
local config = require("lofi.config")

test("no options at all gives the defaults", function()
  eq(config.build(), config.defaults)
  eq(config.build({}), config.defaults)
end)

test("options merge over the defaults, nested tables key by key", function()
  local cfg = config.build({ progress = { icon = "*" }, autoplay = false })
  eq(cfg.progress.icon, "*")
  eq(cfg.progress.done_ms, config.defaults.progress.done_ms)
  eq(cfg.autoplay, false)
end)

test("lists replace the default list instead of merging index by index", function()
  eq(config.build({ daemon_cmd = { "ssh", "box", "lofi-daemon" } }).daemon_cmd, { "ssh", "box", "lofi-daemon" })
end)

local bad = {
  { { progress = { icon = 3 } }, "progress%.icon must be a string, got 3 %(number%)" },
  { { daemon_cmd = "lofi-daemon" }, "daemon_cmd must be a non%-empty list of strings" },
  { { daemon_cmd = {} }, "daemon_cmd must be a non%-empty list of strings" },
  { { generate = { duration_sec = 999 } }, "generate%.duration_sec must be a number from 5 to 240, got 999" },
  { { generate = { format = "mp3" } }, 'generate%.format must be one of "wav", "flac", "ogg", got "mp3"' },
  { { player = { sink = "" } }, "player%.sink must be a non%-empty string" },
  { { player = { cmd = { "mpv" } } }, "unknown option player%.cmd" },
  { { request_timeout_ms = 0 }, "request_timeout_ms must be a number >= 1" },
  { { autoplay = "yes" }, 'autoplay must be true, false, "play" or "queue"' },
  { { install = { extras = "models" } }, "install%.extras must be a list of strings" },
  { { daemon_env = { LOFI_DEVICE = true } }, "daemon_env must be a table of string values" },
  { { progress = "loud" }, "progress must be a table" },
}

for _, case in ipairs(bad) do
  test("rejects " .. vim.inspect(case[1], { newline = " ", indent = "" }), function()
    local err = raises(function() config.build(case[1]) end)
    matches(err, "^%(lofi%) config: ")
    matches(err, case[2])
  end)
end

test("an unknown key is an error that lists the known ones", function()
  local err = raises(function() config.build({ progress = { fidgit = true } }) end)
  matches(err, "unknown option progress%.fidgit")
  matches(err, "known here: done_ms, fidget, icon, native, notify")
end)

test("a typo at the top level is caught too", function()
  matches(raises(function() config.build({ autoplya = true }) end), "unknown option autoplya")
end)

test("setup() with something other than a table says so", function()
  matches(raises(function() config.build("mpv") end), "setup%(%) argument must be a table")
end)

test("every problem is named in one error, not only the first", function()
  local err = raises(function() config.build({ autoplay = "yes", progress = { icon = 3, fidgit = true } }) end)
  eq(err, "(lofi) config: autoplay must be true, false, \"play\" or \"queue\", got \"yes\"; unknown option progress.fidgit (known here: "
    .. "done_ms, fidget, icon, native, notify); progress.icon must be a string, got 3 (number)")
end)

test("apply() keeps the good options and the defaults for the bad ones", function()
  local cfg, problems = config.apply({ autoplay = false, progress = { icon = 3, done_ms = 10 }, typo = 1 })
  eq({ cfg.autoplay, cfg.progress.icon, cfg.progress.done_ms }, { false, "♪", 10 })
  matches(problems, "progress%.icon must be a string")
  matches(problems, "unknown option typo")
  config.set({})
end)

test("a rejected set() leaves the previous config in place", function()
  config.set({ autoplay = false })
  raises(function() config.set({ autoplay = 1 }) end)
  eq(config.get().autoplay, false)
  config.set({})
end)
