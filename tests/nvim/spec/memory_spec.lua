-- lua/lofi/memory.lua: the one-line memory summary, the env for a daemon, the config field.
local memory = require("lofi.memory")
local config = require("lofi.config")

test("bytes read as people read them", function()
  eq(memory.bytes(512), "512 B")
  eq(memory.bytes(1536000), "1.5 MB")
  eq(memory.bytes(209071240), "209 MB")
  eq(memory.bytes(2.4e9), "2.4 GB")
  eq(memory.bytes(nil), "?")
end)

test("the summary names the daemon, the player and the model with its device", function()
  eq(memory.summary({ daemon_rss_bytes = 5.1e8, playback_rss_bytes = 3.7e7, model_backend = "musicgen",
    model_weight_bytes = 2.4e9, device = "cuda" }), "daemon 510 MB, player 37.0 MB, model musicgen 2.4 GB on cuda")
  eq(memory.summary({ daemon_rss_bytes = 5.1e8, playback_rss_bytes = vim.NIL, model_backend = vim.NIL,
    model_weight_bytes = 0, device = vim.NIL }), "daemon 510 MB, no model loaded")
  eq(memory.summary(nil), nil) -- an older daemon sends no memory block
end)

test("model.idle_unload_sec goes to a daemon the plugin starts; daemon_env wins", function()
  local cfg = config.build({ model = { idle_unload_sec = 1.5 } })
  eq(memory.daemon_env({}, cfg), { LOFI_IDLE_UNLOAD_SEC = "1.5" })
  eq(memory.daemon_env({}, config.build()), { LOFI_IDLE_UNLOAD_SEC = "300" })
  eq(memory.daemon_env({ LOFI_IDLE_UNLOAD_SEC = "0" }, cfg), { LOFI_IDLE_UNLOAD_SEC = "0" })
end)

test("model.idle_unload_sec must be a number >= 0", function()
  eq(config.build({ model = { idle_unload_sec = 0 } }).model.idle_unload_sec, 0)
  matches(raises(function() config.build({ model = { idle_unload_sec = -1 } }) end),
    "model%.idle_unload_sec must be a number >= 0, got %-1")
  matches(raises(function() config.build({ model = { idle_unload_sec = "5m" } }) end),
    "model%.idle_unload_sec must be a number >= 0")
  matches(raises(function() config.build({ model = { idle = 5 } }) end), "unknown option model%.idle")
end)
