-- Which UI shows live progress: fidget.nvim when installed, else Neovim 0.12's native
-- progress messages, else vim.notify (live only when the notifier can replace). The UIs
-- themselves are stand-ins here; what is under test is what lofi sends them.
local jobs = require("lofi.jobs")
local config = require("lofi.config")

local n = 0
local function run_job(percents, final)
  n = n + 1
  local id = "s" .. n
  jobs.accepted({ prompt = "sink test" }, { track_id = id, status = "generating", position = 0, backend = "procedural" })
  for _, p in ipairs(percents) do
    jobs.handle("generation_progress", { track_id = id, percent = p, eta_sec = 1 })
  end
  jobs.handle(final or "generation_complete", { track_id = id, path = "/tmp/s.wav", at_step = 1, total_steps = 2 })
end

local notes = {}
vim.notify = function(msg, level, opts)
  table.insert(notes, { msg = msg, opts = opts })
end

test("fidget.nvim gets one handle per track: created, reported, finished", function()
  local calls = {}
  package.preload["fidget.progress"] = function()
    return {
      handle = {
        create = function(opts)
          table.insert(calls, { "create", opts.title, opts.lsp_client.name })
          return {
            report = function(_, o)
              table.insert(calls, { "report", o.percentage })
              -- fidget draws the percentage itself; the message must not repeat it
              if o.message:find("%d+%%") then
                table.insert(calls, { "percent in message", o.message })
              end
            end,
            finish = function() table.insert(calls, { "finish" }) end,
            cancel = function() table.insert(calls, { "cancel" }) end,
          }
        end,
      },
    }
  end
  config.set({ progress = { fidget = true } })
  run_job({ 10, 60 })
  eq(calls, { { "create", "lofi", "lofi" }, { "report", 10 }, { "report", 60 }, { "report", 100 }, { "finish" } })
  calls = {}
  run_job({ 5 }, "generation_cancelled")
  eq(calls[#calls], { "cancel" })
  package.preload["fidget.progress"], package.loaded["fidget.progress"] = nil, nil
end)

test("on Neovim 0.12 the native progress message is updated in place", function()
  local echoes = {}
  local real_has, real_echo = vim.fn.has, vim.api.nvim_echo
  vim.fn.has = function(feature)
    return feature == "nvim-0.12" and 1 or real_has(feature)
  end
  vim.api.nvim_echo = function(chunks, history, opts)
    table.insert(echoes, { text = chunks[1][1], history = history, opts = opts })
    return 7
  end
  config.set({ progress = { fidget = false, native = true } })
  run_job({ 42.9 })
  vim.fn.has, vim.api.nvim_echo = real_has, real_echo
  eq(#echoes, 3)
  eq(echoes[1].opts.kind, "progress")
  eq(echoes[1].opts.source, "lofi")
  eq(echoes[1].opts.id, nil)
  eq(echoes[2].text, '"sink test" ~0:01') -- Neovim shows the percent itself
  eq({ echoes[2].opts.id, echoes[2].opts.percent, echoes[2].opts.status }, { 7, 42, "running" })
  eq(echoes[3].opts.status, "success")
  eq(echoes[2].history, false)
end)

test("plain vim.notify gets one line at the start and one at the end, not one per percent", function()
  notes = {}
  config.set({ progress = { fidget = false, native = false } })
  run_job({ 1, 2, 3, 4, 5, 50, 99 })
  eq(#notes, 2)
  eq(notes[1].msg, 'lofi: generating "sink test" (0:00, procedural)')
  matches(notes[2].msg, "ready")
end)

test("a notifier that returns records gets live updates that replace the message", function()
  local records = 0
  vim.notify = function(msg, _, opts)
    records = records + 1
    table.insert(notes, { msg = msg, opts = opts })
    return { id = records }
  end
  notes = {}
  n = n + 1
  local id = "s" .. n
  jobs.accepted({ prompt = "sink test" }, { track_id = id, status = "generating", position = 0 })
  vim.wait(1100)
  jobs.handle("generation_progress", { track_id = id, percent = 30 })
  jobs.handle("generation_progress", { track_id = id, percent = 31 }) -- within a second: skipped
  eq(#notes, 2)
  eq(notes[2].opts.replace, { id = 1 })
  matches(notes[2].msg, "30%%")
  jobs.handle("generation_cancelled", { track_id = id })
end)

test("the statusline and events work with every sink switched off", function()
  notes = {}
  config.set({ progress = { fidget = false, native = false, notify = false } })
  run_job({ 20 })
  eq(#notes, 0)
  eq(require("lofi").statusline(), "♪ done")
end)

test("a fidget.nvim that fails hands progress to vim.notify, with one warning", function()
  package.preload["fidget.progress"] = function()
    return { handle = { create = function() error("fidget broke") end } }
  end
  notes = {}
  config.set({ progress = { fidget = true } })
  run_job({ 10, 20 })
  package.preload["fidget.progress"], package.loaded["fidget.progress"] = nil, nil
  local warnings = vim.tbl_filter(function(x) return x.msg:find("fidget.nvim failed", 1, true) end, notes)
  eq(#warnings, 1)
  matches(notes[2].msg, "generating")
  matches(notes[#notes].msg, "ready")
end)
