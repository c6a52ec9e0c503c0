-- :LofiGenerate argument parsing and the mapping of friendly names to daemon parameters.
local commands = require("lofi.commands")
local lofi = require("lofi")

test("words are the prompt and a last bare number the duration", function()
  eq(commands.parse_generate("lofi hip hop, jazzy piano 120"), { prompt = "lofi hip hop, jazzy piano", duration = 120 })
end)

test("a last word with a unit is the duration: 30s, 2m, 1m30s, 1:30", function()
  eq(commands.parse_generate("lofi hip hop, jazzy piano 120s"), { prompt = "lofi hip hop, jazzy piano", duration = 120 })
  eq(commands.parse_generate("rain 2m"), { prompt = "rain", duration = 120 })
  eq(commands.parse_generate("rain 1m30s"), { prompt = "rain", duration = 90 })
  eq(commands.parse_generate("rain 1:30"), { prompt = "rain", duration = 90 })
  eq(commands.parse_generate("rain 7.5s"), { prompt = "rain", duration = 7.5 })
  eq(commands.parse_generate("rain duration=2m"), { prompt = "rain", duration = 120 })
  eq(commands.parse_generate("rain 1:75"), { prompt = "rain 1:75" })
end)

test("an era is not a duration", function()
  eq(commands.parse_generate("hip hop from the 90s"), { prompt = "hip hop from the 90s" })
  eq(commands.parse_generate("synthwave 80s"), { prompt = "synthwave", duration = 80 })
end)

test("a number inside the prompt stays in the prompt", function()
  eq(commands.parse_generate("hip hop from the 90s"), { prompt = "hip hop from the 90s" })
  eq(commands.parse_generate("2 pianos in the rain"), { prompt = "2 pianos in the rain" })
end)

test("key=value pairs become typed options anywhere on the line", function()
  eq(commands.parse_generate("steps=20 rainy night guidance=3.5 seed=42 backend=ace-step 60 use-erg-tag=false"), {
    prompt = "rainy night",
    duration = 60,
    steps = 20,
    guidance = 3.5,
    seed = 42,
    backend = "ace-step",
    use_erg_tag = false,
  })
end)

test("duration= wins over a trailing number, which then stays in the prompt", function()
  eq(commands.parse_generate("track 7 duration=30"), { prompt = "track 7", duration = 30 })
end)

test("quoted or empty values are strings (ACE-Step's empty instrumental tag)", function()
  eq(commands.parse_generate('x instrumental_tag=""').instrumental_tag, "")
  eq(commands.parse_generate("x instrumental_tag=").instrumental_tag, "")
  eq(commands.parse_generate("x instrumental_tag=[inst]").instrumental_tag, "[inst]")
  eq(commands.parse_generate("x tag='42'").tag, "42")
end)

test("a 19-digit seed is kept exactly, as digits", function()
  eq(commands.parse_generate("x seed=9223372036854775807").seed, "9223372036854775807")
end)

test("no arguments leave an empty prompt (the command then asks for one)", function()
  eq(commands.parse_generate(""), { prompt = "" })
end)

test("friendly names map to the daemon's parameter names", function()
  local params = lofi.generate_params({ prompt = " rain ", steps = 20, guidance = 4, duration = 10, scheduler = "heun" })
  eq(params, { prompt = "rain", inference_steps = 20, guidance_scale = 4, duration_sec = 10, scheduler = "heun" })
end)

test("backend parameters can also come in params = {...}", function()
  local params = lofi.generate_params({ prompt = "rain", params = { cfg_type = "cfg", steps = 8 } })
  eq(params.cfg_type, "cfg")
  eq(params.inference_steps, 8)
end)

test("the configured default duration, backend and format fill the gaps", function()
  require("lofi.config").set({ generate = { duration_sec = 12, backend = "musicgen", format = "flac" } })
  local params = lofi.generate_params({ prompt = "rain" })
  eq({ params.duration_sec, params.backend, params.format }, { 12, "musicgen", "flac" })
  require("lofi.config").set({})
end)

test("a missing prompt is refused before anything is sent", function()
  local params, err = lofi.generate_params({ duration = 5 })
  eq(params, nil)
  eq(err.code, "BAD_ARGUMENT")
  matches(err.message, "prompt is required")
end)

test("completion offers keys, then values for keys with choices", function()
  eq(commands.complete_generate("sch"), { "scheduler=" })
  eq(commands.complete_generate("scheduler=h"), { "scheduler=heun" })
  eq(commands.complete_generate("format="), { "format=wav", "format=flac", "format=ogg" })
  eq(commands.complete_backend("m"), { "musicgen" })
end)
