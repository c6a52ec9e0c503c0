-- Loaded into every child Neovim by tests/nvim/conftest.py. Records what the user would
-- see (notifications, User events, statusline) and answers vim.ui prompts from a script.
_G.T = {
  notes = {}, -- every vim.notify: {msg, level}
  events = {}, -- every User LofiProgress / LofiDone: {name, data, statusline}
  inputs = {}, -- answers for vim.ui.input, in order
  selects = {}, -- for vim.ui.select: a substring of the label to pick, in order
  asked = {}, -- what vim.ui asked: {kind, prompt, labels}
}

T.builtin_notify = vim.notify -- for tests of what the built-in one shows
vim.notify = function(msg, level)
  table.insert(T.notes, { msg = msg, level = level or vim.log.levels.INFO })
end

vim.ui.input = function(opts, on_confirm)
  table.insert(T.asked, { kind = "input", prompt = opts.prompt })
  on_confirm(table.remove(T.inputs, 1))
end

vim.ui.select = function(items, opts, on_choice)
  local labels = {}
  for i, item in ipairs(items) do
    labels[i] = (opts.format_item or tostring)(item)
  end
  table.insert(T.asked, { kind = "select", prompt = opts.prompt, labels = labels })
  local want = table.remove(T.selects, 1)
  for i, label in ipairs(labels) do
    if want and label:find(want, 1, true) then
      return on_choice(items[i], i)
    end
  end
  on_choice(nil, nil)
end

vim.api.nvim_create_autocmd("User", {
  pattern = { "LofiProgress", "LofiDone" },
  callback = function(ev)
    table.insert(T.events, { name = ev.match, data = ev.data, statusline = require("lofi").statusline() })
  end,
})

--- Wait up to `ms` for the Lua condition `src` (a chunk that returns a boolean).
function T.wait(ms, src)
  local condition = assert(loadstring(src))
  return vim.wait(ms, condition, 20)
end

--- The LofiDone events of one kind ("generation" or "download").
function T.done(kind)
  return vim.tbl_filter(function(e)
    return e.name == "LofiDone" and e.data.kind == (kind or "generation")
  end, T.events)
end

--- Notes at or above a level, as plain strings.
function T.messages(min_level)
  local out = {}
  for _, note in ipairs(T.notes) do
    if note.level >= (min_level or 0) then
      out[#out + 1] = note.msg
    end
  end
  return out
end

--- Call a daemon method and wait for the answer: returns {err, result}.
function T.call(method, params, ms)
  local done, answer = false, nil
  require("lofi").request(method, params, function(err, result)
    done, answer = true, { err = err, result = result }
  end)
  vim.wait(ms or 15000, function() return done end, 20)
  return answer
end
