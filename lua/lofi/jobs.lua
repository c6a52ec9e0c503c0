--- What the plugin knows about tracks being made, kept up to date from notifications.
---
--- One record per track id. Notifications can arrive before the `generate` answer that
--- names the id, so either side may create the record; the callbacks of `generate()` run
--- once, when the job reaches a terminal state (complete, error, cancelled).
local errors = require("lofi.errors")

local M = {}
local H = {
  jobs = {}, ---@type table<string, lofi.Job>
  order = {}, -- track ids, oldest first
  listeners = {}, ---@type table<string, function[]>
  downloads = {}, ---@type table<string, table> backend -> last download_progress
  last_complete = nil, ---@type lofi.Job|nil
}

local KEEP_FINISHED = 50

-- Event names for `on()`: the daemon's notifications, plus two of the plugin's own.
M.events = {
  "generation_queued", -- the daemon accepted a generate request
  "generation_started",
  "generation_progress",
  "generation_complete",
  "generation_error",
  "generation_cancelled",
  "download_progress",
  "download_complete",
  "download_error",
  "backend_status",
  "daemon_exit", -- the daemon died; {code, message, hint}
  "playback_state", -- the daemon's player (see lua/lofi/playback.lua)
  "playback_error",
}

local TERMINAL = { complete = true, error = true, cancelled = true }

---@class lofi.Job
---@field track_id string
---@field state "queued"|"generating"|"complete"|"error"|"cancelled"
---@field prompt? string
---@field backend? string
---@field seed? integer
---@field duration_sec? number
---@field position? integer
---@field percent number
---@field phase? string
---@field eta_sec? number
---@field path? string
---@field result? table the generation_complete params
---@field error? lofi.Error
---@field callbacks function[]

--- Subscribe to an event; returns a function that unsubscribes.
---@param event string one of M.events
---@param fn fun(data: table)
---@return fun()
function M.on(event, fn)
  if not vim.tbl_contains(M.events, event) then
    error("(lofi) on(): unknown event " .. vim.inspect(event) .. "; known: " .. table.concat(M.events, ", "), 2)
  end
  if type(fn) ~= "function" then
    error("(lofi) on(): the handler must be a function", 2)
  end
  H.listeners[event] = H.listeners[event] or {}
  table.insert(H.listeners[event], fn)
  return function()
    local list = H.listeners[event] or {}
    for i, f in ipairs(list) do
      if f == fn then
        table.remove(list, i)
        return
      end
    end
  end
end

function H.emit(event, data)
  for _, fn in ipairs(vim.list_slice(H.listeners[event] or {})) do
    local ok, err = xpcall(fn, debug.traceback, data)
    if not ok then
      require("lofi.notify").show("a handler of " .. event .. " failed: " .. err, vim.log.levels.ERROR)
    end
  end
end

function H.get(track_id)
  local job = H.jobs[track_id]
  if not job then
    job = { track_id = track_id, state = "queued", percent = 0, callbacks = {} }
    H.jobs[track_id] = job
    table.insert(H.order, track_id)
    H.prune()
  end
  return job
end

function H.prune()
  local finished = 0
  for i = #H.order, 1, -1 do
    local job = H.jobs[H.order[i]]
    if TERMINAL[job.state] then
      finished = finished + 1
      if finished > KEEP_FINISHED then
        H.jobs[H.order[i]] = nil
        table.remove(H.order, i)
      end
    end
  end
end

function H.finish(job, state, fields)
  if TERMINAL[job.state] then
    return -- exactly one terminal state per job
  end
  job.state = state
  for k, v in pairs(fields or {}) do
    job[k] = v
  end
  if state == "complete" then
    job.percent = 100
    H.last_complete = job
  end
  -- A failing sink must not keep the callbacks from running.
  local ok, sink_err = xpcall(require("lofi.progress").job_done, debug.traceback, job)
  if not ok then
    require("lofi.notify").show("showing the result failed: " .. sink_err, vim.log.levels.ERROR)
  end
  local callbacks = job.callbacks
  job.callbacks = {}
  for _, cb in ipairs(callbacks) do
    H.run_callback(job, cb)
  end
end

function H.run_callback(job, cb)
  local ok, err
  if job.state == "complete" then
    ok, err = xpcall(cb, debug.traceback, nil, job.result)
  else
    ok, err = xpcall(cb, debug.traceback, job.error, nil)
  end
  if not ok then
    require("lofi.notify").show("a generate() callback failed: " .. err, vim.log.levels.ERROR)
  end
end

--- The daemon accepted `request` and answered `result` ({track_id, status, position, seed, backend}).
---@param request table what was sent
---@param result table
---@param cb? fun(err: lofi.Error|nil, track: table|nil)
---@return lofi.Job
function M.accepted(request, result, cb)
  local job = H.get(result.track_id)
  if result.status == "cached" and TERMINAL[job.state] then
    -- The same track asked for again: its generation_complete follows this answer.
    job.state, job.callbacks = "queued", {}
  end
  job.prompt = request.prompt
  job.duration_sec = request.duration_sec
  job.mine = true -- asked for by this editor (a shared daemon also reports other clients' jobs)
  job.cached = result.status == "cached" -- the library had it: nothing is generated
  job.seed = result.seed
  job.backend = result.backend
  job.position = result.position
  if result.status ~= "queued" and job.state == "queued" then
    job.state = "generating" -- "generating" now, or "cached" (done on the next message)
  end
  if cb then
    if TERMINAL[job.state] then
      H.run_callback(job, cb)
    else
      table.insert(job.callbacks, cb)
    end
  end
  H.emit("generation_queued", vim.tbl_extend("force", result, { prompt = request.prompt }))
  if not TERMINAL[job.state] and result.status ~= "cached" then
    require("lofi.progress").job_update(job)
  end
  return job
end

-- Notification handlers, by method.
H.on = {}

function H.on.generation_started(p)
  local job = H.get(p.track_id)
  if not TERMINAL[job.state] then
    job.state = "generating"
    job.position = 0
    require("lofi.progress").job_update(job)
  end
end

function H.on.generation_progress(p)
  local job = H.get(p.track_id)
  if TERMINAL[job.state] then
    return
  end
  job.state = "generating"
  -- The daemon promises percent never goes backwards; hold the line here as well.
  job.percent = math.max(job.percent or 0, tonumber(p.percent) or 0)
  job.phase = p.phase
  job.eta_sec = p.eta_sec
  job.current_step, job.total_steps = p.current_step, p.total_steps
  require("lofi.progress").job_update(job)
end

function H.on.generation_complete(p)
  local job = H.get(p.track_id)
  H.finish(job, "complete", { path = p.path, result = p, backend = p.backend or job.backend, seed = p.seed or job.seed })
end

function H.on.generation_error(p)
  H.finish(H.get(p.track_id), "error", { error = errors.from_notification(p) })
end

function H.on.generation_cancelled(p)
  local err = errors.new("CANCELLED", "cancelled at step " .. tostring(p.at_step or 0) .. " of " .. tostring(p.total_steps or 0), nil, p)
  H.finish(H.get(p.track_id), "cancelled", { error = err })
end

function H.on.download_progress(p)
  H.downloads[p.backend] = p
  require("lofi.progress").download_update(p)
end

function H.on.download_complete(p)
  H.downloads[p.backend] = nil
  require("lofi.progress").download_done(p.backend, nil)
end

function H.on.download_error(p)
  H.downloads[p.backend] = nil
  require("lofi.progress").download_done(p.backend, errors.from_notification(p))
end

--- A shared daemon's jobs as get_status reports them, for an editor that connects while they
--- run or wait (their next notification may be far off: a queued job sends none). Jobs this
--- editor already knows keep what it knows.
---@param status table the get_status result
function M.adopt(status)
  local entries = {}
  if type(status.current) == "table" then
    table.insert(entries, { status.current, "generating" })
  end
  for _, queued in ipairs(type(status.queue) == "table" and status.queue or {}) do
    table.insert(entries, { queued, "queued" })
  end
  for position, entry in ipairs(entries) do
    local described, state = entry[1], entry[2]
    if type(described.track_id) == "string" and not H.jobs[described.track_id] then
      local job = H.get(described.track_id)
      job.state, job.position = state, position - 1
      job.prompt, job.backend, job.duration_sec, job.seed = described.prompt, described.backend,
        described.duration_sec, described.seed
      local progress = type(described.progress) == "table" and described.progress or {}
      job.percent = tonumber(progress.percent) or 0
      job.phase, job.eta_sec = progress.phase, progress.eta_sec
      require("lofi.progress").job_update(job)
    end
  end
end

--- Route one daemon notification.
function M.handle(method, params)
  local handler = H.on[method]
  if handler and (params.track_id or params.backend) then
    handler(params)
  end
  H.emit(method, params)
end

--- The daemon died: every unfinished job fails with `err`. Returns how many did.
---@param err lofi.Error
---@return integer
function M.fail_all(err)
  local count = 0
  for _, id in ipairs(vim.list_slice(H.order)) do
    local job = H.jobs[id]
    if job and not TERMINAL[job.state] then
      count = count + 1
      H.finish(job, "error", { error = err })
    end
  end
  for backend in pairs(H.downloads) do
    H.downloads[backend] = nil
    require("lofi.progress").download_done(backend, err)
  end
  H.emit("daemon_exit", { code = err.code, message = err.message, hint = err.hint })
  return count
end

--- Unfinished jobs: the generating one first, then the queued ones in order.
---@return lofi.Job[]
function M.active()
  local generating, queued = {}, {}
  for _, id in ipairs(H.order) do
    local job = H.jobs[id]
    if job.state == "generating" then
      table.insert(generating, job)
    elseif job.state == "queued" then
      table.insert(queued, job)
    end
  end
  return vim.list_extend(generating, queued)
end

---@return table<string, table> backend -> last download_progress params
function M.downloads()
  return H.downloads
end

--- A plain copy of a job, safe to hand out (no callbacks).
---@param job lofi.Job|nil
---@return table|nil
function M.public(job)
  if not job then
    return nil
  end
  local copy = {}
  for k, v in pairs(job) do
    if k ~= "callbacks" then
      copy[k] = v
    end
  end
  return copy
end

---@return lofi.Job|nil
function M.get(track_id)
  return H.jobs[track_id]
end

---@return lofi.Job|nil the last job that finished with a track
function M.last_complete()
  return H.last_complete
end

return M
