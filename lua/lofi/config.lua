--- Defaults, and validation of what the user passes to setup().
---
--- Every field is checked and an error names its dotted path, e.g.
--- `(lofi) config: progress.icon must be a string, got number`. Unknown keys are errors too:
--- a typo must not silently fall back to a default.
local M = {}

---@class lofi.Config
M.defaults = {
  -- Command that starts the daemon (a list). nil: <plugin>/.venv/bin/lofi-daemon, then
  -- `lofi-daemon` on PATH. Any command that speaks the protocol over stdio works, e.g.
  -- { "ssh", "gpu-box", "lofi-daemon" }.
  daemon_cmd = nil,
  -- Extra environment for the daemon, e.g. { LOFI_DEVICE = "cpu" }.
  daemon_env = {},
  -- Remote generator (docs/remote.md): the local daemon keeps the library and plays, and sends
  -- generation to this command, e.g. { "ssh", "gpu-box", "lofi-daemon", "--stdio" } (a list,
  -- run without a shell). Passed to the daemon as LOFI_GENERATOR.
  generator = nil,
  -- Backends whose jobs go to the generator; nil: every backend but procedural.
  generator_backends = nil,
  -- Where the daemon's stderr goes. nil: stdpath("log") .. "/lofi-daemon.log".
  log_file = nil,
  -- How long a request may wait for its answer.
  request_timeout_ms = 15000,
  -- Restart the daemon once by itself when it dies (socket: reconnect, starting it if needed).
  auto_restart = true,
  -- One daemon per user, shared by every Neovim and the `lofi` CLI over a private unix socket.
  -- Ignored when daemon_cmd is set (that command speaks stdio, e.g. through ssh).
  daemon = {
    socket = true, -- false: a private daemon per Neovim over stdio, as with daemon_cmd
    socket_path = nil, -- nil: $XDG_RUNTIME_DIR/lofi.nvim/daemon.sock (see :help lofi-daemon)
    idle_exit_sec = 30, -- the daemon exits this long after its last client left (0: at once)
  },
  -- The model in memory (passed to a daemon this Neovim starts; see :help lofi-memory).
  model = {
    idle_unload_sec = 300, -- unload the model this long after it was last needed (0: never)
  },
  -- Defaults for :LofiGenerate and generate().
  generate = {
    duration_sec = 30,
    backend = nil, -- nil: the daemon's default (see :LofiBackend)
    format = nil, -- "wav" | "flac" | "ogg"; nil: the daemon's default
  },
  -- After :LofiGenerate: "play" (or true) now, "queue" after what plays, false: nothing.
  autoplay = true,
  -- The daemon plays (one player, see :help lofi-playback).
  player = {
    -- nil: the daemon's choice ("auto": sounddevice, pw-cat, paplay, aplay, mpv, ffplay).
    -- A name with extra arguments ("mpv --ao=pulse"), or a command reading raw f32le
    -- 48 kHz stereo on stdin.
    sink = nil,
    radio_prompt = "lofi hip hop, jazzy piano, vinyl crackle", -- :LofiRadio with no prompt, nothing played yet
    crossfade_sec = 4, -- the radio's crossfade between tracks (0.1 to 30)
    -- When the last editor quits the music fades out (~1 s) and the radio stops; true: it
    -- plays on, and the daemon stays while it plays.
    keep_playing = false,
    -- One short message after :LofiNext, :LofiPause, :LofiVolume, :LofiStop; false when your
    -- statusline shows the player (a clamped volume is said either way).
    notify = true,
  },
  -- :LofiRadio (docs/radio.md).
  radio = {
    -- While the first track is made: "auto" (the nearest library track, else procedural music
    -- rendered as it plays), "library", "procedural", or "none".
    bridge = "auto",
    -- "flow" (each track continues the last; backends that can), "shuffle"; nil: flow where it can.
    mode = nil,
  },
  progress = {
    icon = "♪",
    fidget = true, -- use fidget.nvim when it is installed
    native = true, -- use Neovim 0.12 progress messages when present
    notify = true, -- vim.notify on start/finish (and progress, if the notifier can replace)
    done_ms = 5000, -- how long the statusline shows "done"/"failed"/"cancelled"
  },
  -- :LofiInstall and the lazy.nvim build step.
  install = {
    python = "python3",
    extras = {}, -- { "models" } pulls torch, transformers, diffusers
  },
}

local H = {}

-- Validators return nil when fine, or what was expected.
function H.is_list_of_strings(v, allow_empty)
  if type(v) ~= "table" or (not allow_empty and #v == 0) then
    return false
  end
  local n = 0
  for k, item in pairs(v) do
    n = n + 1
    if type(k) ~= "number" or type(item) ~= "string" or item == "" then
      return false
    end
  end
  return n == #v
end

function H.check(expected, test)
  return function(v)
    if not test(v) then
      return expected
    end
  end
end

local function optional(validator)
  return function(v)
    if v ~= nil then
      return validator(v)
    end
  end
end

local boolean = H.check("a boolean", function(v) return type(v) == "boolean" end)
local string_ = H.check("a non-empty string", function(v) return type(v) == "string" and v ~= "" end)
local function number_at_least(min)
  return H.check("a number >= " .. min, function(v) return type(v) == "number" and v >= min end)
end
local function one_of(choices)
  return H.check("one of " .. table.concat(vim.tbl_map(vim.inspect, choices), ", "), function(v)
    return vim.tbl_contains(choices, v)
  end)
end

-- One validator per leaf, by dotted path; a table here marks a section.
H.schema = {
  daemon_cmd = optional(H.check("a non-empty list of strings", H.is_list_of_strings)),
  generator = optional(H.check("a non-empty list of strings", H.is_list_of_strings)),
  generator_backends = optional(H.check("a list of backend names", function(v) return H.is_list_of_strings(v, true) end)),
  daemon_env = H.check("a table of string values", function(v)
    if type(v) ~= "table" then
      return false
    end
    for k, item in pairs(v) do
      if type(k) ~= "string" or (type(item) ~= "string" and type(item) ~= "number") then
        return false
      end
    end
    return true
  end),
  log_file = optional(string_),
  request_timeout_ms = number_at_least(1),
  auto_restart = boolean,
  daemon = {
    socket = boolean,
    socket_path = optional(string_),
    idle_exit_sec = number_at_least(0),
  },
  model = {
    idle_unload_sec = number_at_least(0),
  },
  generate = {
    duration_sec = H.check("a number from 5 to 240", function(v)
      return type(v) == "number" and v >= 5 and v <= 240
    end),
    backend = optional(string_),
    format = optional(one_of({ "wav", "flac", "ogg" })),
  },
  autoplay = H.check('true, false, "play" or "queue"', function(v)
    return type(v) == "boolean" or v == "play" or v == "queue"
  end),
  player = {
    sink = optional(H.check("a non-empty string", function(v) return type(v) == "string" and v ~= "" end)),
    radio_prompt = H.check("a non-empty string", function(v) return type(v) == "string" and vim.trim(v) ~= "" end),
    crossfade_sec = H.check("a number from 0.1 to 30", function(v) return type(v) == "number" and v >= 0.1 and v <= 30 end),
    keep_playing = boolean,
    notify = boolean,
  },
  radio = {
    bridge = one_of({ "auto", "library", "procedural", "none" }),
    mode = optional(one_of({ "flow", "shuffle" })),
  },
  progress = {
    icon = H.check("a string", function(v) return type(v) == "string" end),
    fidget = boolean,
    native = boolean,
    notify = boolean,
    done_ms = number_at_least(0),
  },
  install = {
    python = string_,
    extras = H.check("a list of strings", function(v) return H.is_list_of_strings(v, true) end),
  },
}

function H.describe(value)
  if type(value) == "table" or type(value) == "string" then
    return vim.inspect(value, { newline = " ", indent = "" })
  end
  return type(value) == "nil" and "nil" or string.format("%s (%s)", tostring(value), type(value))
end

-- Every problem is collected into `problems` as {path = {...keys}, text = "..."}.
-- `partial`: only the keys present are checked (the user's opts); otherwise every leaf.
function H.validate(opts, schema, path, partial, problems)
  local prefix = #path > 0 and (table.concat(path, ".") .. ".") or ""
  if type(opts) ~= "table" then
    problems[#problems + 1] = { path = path, text = string.format("%s must be a table, got %s",
      #path == 0 and "setup() argument" or table.concat(path, "."), H.describe(opts)) }
    return
  end
  local keys = vim.tbl_keys(opts)
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, key in ipairs(keys) do
    if type(key) ~= "string" or schema[key] == nil then
      local known = vim.tbl_keys(schema)
      table.sort(known)
      problems[#problems + 1] = { path = vim.list_extend(vim.list_slice(path), { key }),
        text = string.format("unknown option %s%s (known here: %s)", prefix, tostring(key), table.concat(known, ", ")) }
    end
  end
  local names = vim.tbl_keys(schema)
  table.sort(names)
  for _, key in ipairs(names) do
    local rule, value = schema[key], opts[key]
    local here = vim.list_extend(vim.list_slice(path), { key })
    if type(rule) == "table" then
      if value ~= nil then
        H.validate(value, rule, here, partial, problems)
      end
    elseif not (partial and value == nil) then
      local expected = rule(value)
      if expected then
        problems[#problems + 1] = { path = here, text = string.format("%s must be %s, got %s",
          table.concat(here, "."), expected, H.describe(value)) }
      end
    end
  end
end

--- All problems of `opts`, each a sentence naming its dotted path ({} when fine).
---@param opts any
---@return {path: string[], text: string}[]
function M.problems(opts)
  local problems = {}
  H.validate(opts == nil and {} or opts, H.schema, {}, true, problems)
  return problems
end

function H.message(problems)
  return "(lofi) config: " .. table.concat(vim.tbl_map(function(p) return p.text end, problems), "; ")
end

function H.merge(opts)
  local merged = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  -- Lists replace, they do not merge index by index.
  for _, path in ipairs({ { "daemon_cmd" }, { "generator" }, { "generator_backends" }, { "install", "extras" } }) do
    local value = vim.tbl_get(opts, unpack(path))
    if value ~= nil then
      local parent = merged
      for i = 1, #path - 1 do
        parent = parent[path[i]]
      end
      parent[path[#path]] = value
    end
  end
  return merged
end

--- Merge `opts` over the defaults and validate the result. Raises one error that names
--- every bad field by its dotted path.
---@param opts? table
---@return lofi.Config
function M.build(opts)
  local problems = M.problems(opts)
  if #problems > 0 then
    error(H.message(problems), 0)
  end
  local merged = H.merge(opts or {})
  local after = {}
  H.validate(merged, H.schema, {}, false, after)
  if #after > 0 then
    error(H.message(after), 0)
  end
  H.pass_generator(merged)
  return merged
end

-- The daemon learns of the generator from its environment (daemon_env set by hand wins).
function H.pass_generator(cfg)
  if cfg.generator and cfg.daemon_env.LOFI_GENERATOR == nil then
    cfg.daemon_env.LOFI_GENERATOR = vim.json.encode(cfg.generator)
  end
  if cfg.generator_backends and cfg.daemon_env.LOFI_GENERATOR_BACKENDS == nil then
    cfg.daemon_env.LOFI_GENERATOR_BACKENDS = table.concat(cfg.generator_backends, ",")
  end
end

--- `opts` without the fields named by `problems` (what setup() can still apply).
function H.without(opts, problems)
  if type(opts) ~= "table" then
    return {}
  end
  local kept = vim.deepcopy(opts)
  for _, problem in ipairs(problems) do
    local parent = kept
    for i = 1, #problem.path - 1 do
      parent = type(parent) == "table" and parent[problem.path[i]] or nil
    end
    if type(parent) == "table" and #problem.path > 0 then
      parent[problem.path[#problem.path]] = nil
    elseif #problem.path == 0 then
      return {}
    end
  end
  return kept
end

-- The active config; setup() replaces it, everything else reads it.
M.current = M.build({})

--- Replace the config; raises (and changes nothing) when `opts` has a problem.
---@param opts? table
function M.set(opts)
  M.current = M.build(opts)
  return M.current
end

--- What setup() does: apply every good field of `opts`, leave each bad one at its default,
--- and return the problems (a message naming all of them, or nil).
---@param opts? table
---@return lofi.Config, string|nil
function M.apply(opts)
  local problems = M.problems(opts)
  M.current = M.build(H.without(opts, problems))
  return M.current, #problems > 0 and H.message(problems) or nil
end

--- Every option by its dotted path ("generate.duration_sec", ...), sorted.
---@return string[]
function M.keys()
  local out = {}
  local function walk(schema, prefix)
    for key, rule in pairs(schema) do
      if type(rule) == "table" then
        walk(rule, prefix .. key .. ".")
      else
        out[#out + 1] = prefix .. key
      end
    end
  end
  walk(H.schema, "")
  table.sort(out)
  return out
end

---@return lofi.Config
function M.get()
  return M.current
end

return M
