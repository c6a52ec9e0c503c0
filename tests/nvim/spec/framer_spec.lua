-- The framer turns arbitrary stdout chunks into whole lines.
local rpc = require("lofi.rpc")

local messages = {
  { jsonrpc = "2.0", id = 1, result = { status = "ok", version = "0.1.0", protocol = 1 } },
  { jsonrpc = "2.0", method = "generation_progress", params = { track_id = "t1", percent = 42.5, phase = "♪ café — 日本語 🎹" } },
  { jsonrpc = "2.0", id = 2, error = { code = -32003, message = "the queue is full", data = { error_code = "QUEUE_FULL", hint = "Wait about 12 s" } } },
}
local lines = vim.tbl_map(vim.json.encode, messages)
local stream = table.concat(lines, "\n") .. "\n"

local function feed_all(chunks)
  local framer, out = rpc.framer(), {}
  for _, chunk in ipairs(chunks) do
    vim.list_extend(out, framer.feed(chunk))
  end
  return out, framer.pending()
end

test("three lines in one chunk come out as three lines", function()
  local out, rest = feed_all({ stream })
  eq(out, lines)
  eq(rest, "")
end)

test("every single cut point gives the same lines", function()
  for cut = 0, #stream do
    local out, rest = feed_all({ stream:sub(1, cut), stream:sub(cut + 1) })
    eq(out, lines, "cut at byte " .. cut)
    eq(rest, "")
  end
end)

test("every pair of cut points gives the same lines", function()
  for a = 0, #stream do
    for b = a, #stream do
      local out = feed_all({ stream:sub(1, a), stream:sub(a + 1, b), stream:sub(b + 1) })
      if not vim.deep_equal(out, lines) then
        error(string.format("cuts at %d and %d: %s", a, b, vim.inspect(out)))
      end
    end
  end
end)

test("byte by byte, multi-byte characters split across chunks decode intact", function()
  local chunks = {}
  for i = 1, #stream do
    chunks[i] = stream:sub(i, i)
  end
  local out = feed_all(chunks)
  eq(#out, 3)
  for i, line in ipairs(out) do
    eq(rpc.decode(line), messages[i])
  end
  eq(rpc.decode(out[2]).params.phase, "♪ café — 日本語 🎹")
end)

test("a partial line waits for its newline", function()
  local framer = rpc.framer()
  eq(framer.feed('{"jsonrpc":"2.0",'), {})
  eq(framer.feed('"id":7,"result":{}}'), {})
  eq(framer.pending(), '{"jsonrpc":"2.0","id":7,"result":{}}')
  eq(framer.feed("\n"), { '{"jsonrpc":"2.0","id":7,"result":{}}' })
  eq(framer.pending(), "")
end)

test("CRLF endings and blank lines are tolerated", function()
  local out = feed_all({ lines[1] .. "\r\n\n\r\n" .. lines[2] .. "\n" })
  eq(out, { lines[1], lines[2] })
end)

test("split_lines is pure: same input, same output, rest kept", function()
  local got, rest = rpc.split_lines("ab", "c\nde")
  eq(got, { "abc" })
  eq(rest, "de")
  local again, rest2 = rpc.split_lines("ab", "c\nde")
  eq(again, got)
  eq(rest2, rest)
end)

test("a long line in many small chunks arrives whole", function()
  local big = vim.json.encode({ jsonrpc = "2.0", id = 9, result = { blob = string.rep("x", 200000) } })
  local chunks = {}
  for i = 1, #big, 997 do
    chunks[#chunks + 1] = big:sub(i, i + 996)
  end
  chunks[#chunks + 1] = "\n"
  local out = feed_all(chunks)
  eq(#out, 1)
  eq(#rpc.decode(out[1]).result.blob, 200000)
end)

test("a malformed line is reported, not thrown", function()
  local message, err = rpc.decode("{not json")
  eq(message, nil)
  matches(err, "not JSON")
  local _, err2 = rpc.decode("[1, 2]")
  matches(err2, "not a JSON object")
end)
