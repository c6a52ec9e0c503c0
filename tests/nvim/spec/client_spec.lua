-- The RPC client: ids, callbacks, errors, timeouts, notifications; no process involved,
-- the daemon's side is played by writing lines into client:feed().
local rpc = require("lofi.rpc")

local function new_client(opts)
  local sent, notes, bad = {}, {}, {}
  local client = rpc.new_client(vim.tbl_extend("force", {
    send = function(data)
      table.insert(sent, data)
      return true
    end,
    on_notification = function(method, params)
      table.insert(notes, { method, params })
    end,
    on_bad_line = function(line, why)
      table.insert(bad, why)
    end,
  }, opts or {}))
  return client, sent, notes, bad
end

local function answer(client, message)
  client:feed(vim.json.encode(vim.tbl_extend("force", { jsonrpc = "2.0" }, message)) .. "\n")
end

test("requests go out as one line each, with increasing ids and params by name", function()
  local client, sent = new_client()
  client:request("ping")
  client:request("generate", { prompt = "rain", duration_sec = 5 })
  eq(#sent, 2)
  eq(sent[1]:sub(-1), "\n")
  local first, second = rpc.decode(sent[1]), rpc.decode(sent[2])
  eq({ first.jsonrpc, first.id, first.method }, { "2.0", 1, "ping" })
  matches(sent[1], '"params":{}') -- an object, never []
  eq({ second.id, second.params }, { 2, { prompt = "rain", duration_sec = 5 } })
end)

test("answers reach their own callbacks, in whatever order they come", function()
  local client = new_client()
  local got = {}
  client:request("a", nil, function(err, result) got.a = { err, result } end)
  client:request("b", nil, function(err, result) got.b = { err, result } end)
  answer(client, { id = 2, result = { which = "b" } })
  answer(client, { id = 1, result = { which = "a" } })
  eq(got.a, { nil, { which = "a" } })
  eq(got.b, { nil, { which = "b" } })
  eq(client:pending_count(), 0)
end)

test("an error answer becomes a lofi error with the daemon's code name, hint and facts", function()
  local client = new_client()
  local got
  client:request("generate", { prompt = "x", duration_sec = 5 }, function(err) got = err end)
  answer(client, { id = 1, error = { code = -32003, message = "the queue is full (5 tracks waiting)",
    data = { error_code = "QUEUE_FULL", hint = "Wait about 42 s or cancel a queued track.", queue_length = 5, estimated_wait_sec = 42.0 } } })
  eq(got.code, "QUEUE_FULL")
  eq(got.hint, "Wait about 42 s or cancel a queued track.")
  eq(got.data.queue_length, 5)
end)

test("an error without data is named from its number", function()
  local client = new_client()
  local got
  client:request("nope", nil, function(err) got = err end)
  answer(client, { id = 1, error = { code = -32601, message = "method not found: nope" } })
  eq(got.code, "METHOD_NOT_FOUND")
  eq(got.message, "method not found: nope")
end)

test("notifications go to the listener with their params", function()
  local client, _, notes = new_client()
  answer(client, { method = "generation_progress", params = { track_id = "t1", percent = 10 } })
  answer(client, { method = "backend_status", params = { backend = "procedural", status = "ready" } })
  eq(notes, { { "generation_progress", { track_id = "t1", percent = 10 } }, { "backend_status", { backend = "procedural", status = "ready" } } })
end)

test("JSON null arrives as nil (an idle get_status has no current job)", function()
  local client = new_client()
  local got
  client:request("get_status", nil, function(_, result) got = result end)
  client:feed('{"jsonrpc":"2.0","id":1,"result":{"current":null,"queue":[],"backend":"procedural"}}\n')
  eq(got.current, nil)
  eq(got.queue, {})
end)

test("a request without an answer times out with TIMEOUT, and the late answer is ignored", function()
  local client, _, _, bad = new_client({ timeout_ms = 30 })
  local calls = {}
  client:request("slow", nil, function(err, result) table.insert(calls, { err and err.code, result }) end)
  vim.wait(1000, function() return #calls > 0 end, 5)
  eq(calls, { { "TIMEOUT" } })
  answer(client, { id = 1, result = "late" })
  eq(#calls, 1)
  eq(bad, { "response to an unknown request id" })
end)

test("fail_all ends every waiting request once with the given error", function()
  local client = new_client()
  local codes = {}
  for i = 1, 3 do
    client:request("m" .. i, nil, function(err) table.insert(codes, err.code) end)
  end
  client:fail_all(require("lofi.errors").new("DAEMON_EXITED", "gone"))
  client:fail_all(require("lofi.errors").new("DAEMON_EXITED", "gone again"))
  eq(codes, { "DAEMON_EXITED", "DAEMON_EXITED", "DAEMON_EXITED" })
end)

test("a callback that throws does not stop the lines after it", function()
  local reported = {}
  local client, _, notes = new_client({ on_callback_error = function(e) table.insert(reported, e) end })
  client:request("a", nil, function() error("boom") end)
  client:feed('{"jsonrpc":"2.0","id":1,"result":1}\n{"jsonrpc":"2.0","method":"backend_status","params":{"backend":"x","status":"ready"}}\n')
  eq(#reported, 1)
  matches(reported[1], "boom")
  eq(#notes, 1)
end)

test("a write that fails ends the request at once with DAEMON_EXITED", function()
  local client = new_client({ send = function() error("EPIPE") end })
  local got
  client:request("ping", nil, function(err) got = err end)
  eq(got.code, "DAEMON_EXITED")
  matches(got.message, "EPIPE")
end)

test("seeds beyond 2^53 survive the trip through Lua exactly", function()
  local message = rpc.decode('{"jsonrpc":"2.0","id":1,"result":{"seed": 9223372036854775807, "position": 0}}')
  eq(message.result.seed, "9223372036854775807")
  local line = rpc.encode({ jsonrpc = "2.0", id = 2, method = "generate", params = { prompt = "a \"seed\":\"1\" b", seed = message.result.seed } })
  matches(line, '"seed":9223372036854775807[,}]')
  matches(line, 'a \\"seed\\":\\"1\\" b') -- text inside a prompt is left alone
end)
