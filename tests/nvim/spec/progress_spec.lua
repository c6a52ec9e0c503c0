-- Job state and the statusline, driven by the daemon's notifications (no process: the
-- notifications are handed to lofi.jobs the way the daemon client would).
local jobs = require("lofi.jobs")
local lofi = require("lofi")

local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, { msg = msg, level = level })
end

local fired = {}
vim.api.nvim_create_autocmd("User", {
  pattern = { "LofiProgress", "LofiDone" },
  callback = function(ev)
    table.insert(fired, { pattern = ev.match, data = ev.data })
  end,
})

require("lofi.config").set({ progress = { done_ms = 40, fidget = false, native = false } })
local n = 0
local function new_id()
  n = n + 1
  return "t" .. n
end

test("queued, then percent with ETA, then done, then empty", function()
  local id = new_id()
  local results = {}
  jobs.accepted({ prompt = "rain" }, { track_id = id, status = "queued", position = 1, seed = 1, backend = "procedural" },
    function(err, track) table.insert(results, { err, track }) end)
  eq(lofi.statusline(), "♪ queued")
  jobs.handle("generation_started", { track_id = id })
  eq(lofi.statusline(), "♪ 0%")
  jobs.handle("generation_progress", { track_id = id, percent = 42.7, phase = "steps", eta_sec = 8.2 })
  eq(lofi.statusline(), "♪ 42% ~0:08")
  jobs.handle("generation_complete", { track_id = id, path = "/tmp/x.wav", duration_sec = 5, seed = 1 })
  eq(lofi.statusline(), "♪ done")
  eq(#results, 1)
  eq(results[1][2].path, "/tmp/x.wav")
  vim.wait(500, function() return lofi.statusline() == "" end, 10)
  eq(lofi.statusline(), "")
end)

test("percent never goes backwards in the statusline", function()
  local id = new_id()
  jobs.accepted({ prompt = "a" }, { track_id = id, status = "generating", position = 0 })
  jobs.handle("generation_progress", { track_id = id, percent = 50, eta_sec = 3 })
  jobs.handle("generation_progress", { track_id = id, percent = 49, eta_sec = 3 })
  eq(lofi.statusline(), "♪ 50% ~0:03")
  jobs.handle("generation_cancelled", { track_id = id, at_step = 5, total_steps = 10 })
  eq(lofi.statusline(), "♪ cancelled")
end)

test("waiting jobs show as a count next to the running one", function()
  local a, b, c = new_id(), new_id(), new_id()
  jobs.accepted({ prompt = "a" }, { track_id = a, status = "generating", position = 0 })
  jobs.accepted({ prompt = "b" }, { track_id = b, status = "queued", position = 1 })
  jobs.accepted({ prompt = "c" }, { track_id = c, status = "queued", position = 2 })
  jobs.handle("generation_progress", { track_id = a, percent = 10 })
  eq(lofi.statusline(), "♪ 10% +2")
  for _, id in ipairs({ a, b, c }) do
    jobs.handle("generation_cancelled", { track_id = id, at_step = 0, total_steps = 0 })
  end
end)

test("a completion that arrives before the generate answer still reaches the callback once", function()
  local id = new_id()
  jobs.handle("generation_complete", { track_id = id, path = "/tmp/early.wav" })
  jobs.handle("generation_complete", { track_id = id, path = "/tmp/early.wav" })
  local calls = 0
  jobs.accepted({ prompt = "early" }, { track_id = id, status = "generating", position = 0 }, function() calls = calls + 1 end)
  eq(calls, 1)
end)

test("a failed job calls back with the daemon's error and shows it once", function()
  local id = new_id()
  local got
  notes = {}
  jobs.accepted({ prompt = "x" }, { track_id = id, status = "generating", position = 0 }, function(err) got = err end)
  jobs.handle("generation_error", { track_id = id, code = "MODEL_INFERENCE_FAILED", message = "NaN in the output", hint = "Retry with another seed." })
  eq(got.code, "MODEL_INFERENCE_FAILED")
  local errors_shown = vim.tbl_filter(function(x) return x.level == vim.log.levels.ERROR end, notes)
  eq(#errors_shown, 1)
  eq(errors_shown[1].msg, "lofi: NaN in the output. Retry with another seed.")
  eq(lofi.statusline(), "♪ failed")
end)

test("User LofiProgress and LofiDone fire with the job's data", function()
  local id = new_id()
  fired = {}
  jobs.accepted({ prompt = "x" }, { track_id = id, status = "generating", position = 0 })
  jobs.handle("generation_progress", { track_id = id, percent = 30, eta_sec = 2, phase = "steps" })
  jobs.handle("generation_complete", { track_id = id, path = "/tmp/y.wav" })
  local last_progress = fired[#fired - 1]
  eq(last_progress.pattern, "LofiProgress")
  eq({ last_progress.data.track_id, last_progress.data.percent, last_progress.data.statusline }, { id, 30, "♪ 30% ~0:02" })
  eq(fired[#fired].pattern, "LofiDone")
  eq({ fired[#fired].data.status, fired[#fired].data.path }, { "complete", "/tmp/y.wav" })
end)

test("downloads show per backend with their overall percent", function()
  jobs.handle("download_progress", { backend = "musicgen", component = "model", component_percent = 80, overall_percent = 37.5 })
  eq(lofi.statusline(), "♪ ↓ musicgen 37%")
  jobs.handle("download_complete", { backend = "musicgen" })
  eq(lofi.statusline(), "♪ installed")
end)

test("on() delivers events and its return value unsubscribes", function()
  local seen = {}
  local off = lofi.on("generation_progress", function(p) table.insert(seen, p.percent) end)
  local id = new_id()
  jobs.accepted({ prompt = "x" }, { track_id = id, status = "generating", position = 0 })
  jobs.handle("generation_progress", { track_id = id, percent = 5 })
  off()
  jobs.handle("generation_progress", { track_id = id, percent = 6 })
  eq(seen, { 5 })
  matches(raises(function() lofi.on("generation_finished", function() end) end), "unknown event")
  jobs.handle("generation_cancelled", { track_id = id })
end)

test("the daemon dying fails every unfinished job and says how many", function()
  local a, b = new_id(), new_id()
  local codes = {}
  jobs.accepted({ prompt = "a" }, { track_id = a, status = "generating", position = 0 }, function(err) table.insert(codes, err.code) end)
  jobs.accepted({ prompt = "b" }, { track_id = b, status = "queued", position = 1 }, function(err) table.insert(codes, err.code) end)
  local count = jobs.fail_all(require("lofi.errors").new("DAEMON_EXITED", "the daemon exited (killed by signal 9)"))
  eq(count, 2)
  eq(codes, { "DAEMON_EXITED", "DAEMON_EXITED" })
  eq(#jobs.active(), 0)
end)

test("errors read as one line with the facts and the hint", function()
  local errors = require("lofi.errors")
  local err = errors.from_rpc({ code = -32003, message = "the queue is full (5 tracks waiting)",
    data = { error_code = "QUEUE_FULL", hint = "Wait about 75 s or cancel a queued track.", estimated_wait_sec = 75 } })
  eq(errors.format(err), "the queue is full (5 tracks waiting). Wait about 75 s or cancel a queued track.")
  err.hint = "Cancel a queued track."
  eq(errors.format(err), "the queue is full (5 tracks waiting); a slot frees in about 1:15. Cancel a queued track.")
  eq(errors.level("QUEUE_FULL"), vim.log.levels.WARN)
  eq(errors.level("DAEMON_EXITED"), vim.log.levels.ERROR)
  eq(errors.clock(3725), "1:02:05")
end)
