--- Every message the plugin shows goes through here: one title, one formatter.
local errors = require("lofi.errors")

local M = {}
local H = {}

M.title = "lofi"

-- The built-in vim.notify echoes: a message wider than v:echospace, or with more than one
-- line, stops everything at a hit-enter prompt. Notifier plugins replace it and wrap.
function H.is_builtin_notify()
  local info = debug.getinfo(vim.notify, "S")
  return info ~= nil and info.source:find("vim/_editor.lua", 1, true) ~= nil
end

--- `text` cut to `width` display cells, the middle replaced by "…" (ends say the most).
function M.fit(text, width)
  if vim.fn.strdisplaywidth(text) <= width then
    return text
  end
  local chars = vim.fn.strchars(text)
  local keep_end = math.floor((width - 1) / 3)
  local head, tail = vim.fn.strcharpart(text, 0, width - 1 - keep_end), vim.fn.strcharpart(text, chars - keep_end)
  while vim.fn.strdisplaywidth(head .. "…" .. tail) > width and #head > 0 do
    head = vim.fn.strcharpart(head, 0, vim.fn.strchars(head) - 1)
  end
  return head .. "…" .. tail
end

--- Show `msg` with vim.notify. `opts.replace` is a record returned earlier (nvim-notify,
--- snacks); `opts.id` lets notifiers that key on ids (snacks, mini) replace in place.
--- With the built-in vim.notify each message is one line that fits; a longer warning or
--- error also opens in a float with the whole text.
---@param msg string
---@param level? integer vim.log.levels
---@param opts? table
---@return any record whatever vim.notify returned (nil for the built-in one)
function M.show(msg, level, opts)
  level = level or vim.log.levels.INFO
  opts = vim.tbl_extend("keep", opts or {}, { title = M.title })
  local text = "lofi: " .. msg
  if H.is_builtin_notify() then
    local line = text:gsub("%s*\n%s*", " · ")
    local room = math.max(20, vim.v.echospace)
    if (line ~= text or vim.fn.strdisplaywidth(line) > room) and level >= vim.log.levels.WARN then
      require("lofi.view").show(M.title, vim.split(text, "\n"))
    end
    return vim.notify(M.fit(line, room), level, opts)
  end
  return vim.notify(text, level, opts)
end

---@param err lofi.Error
---@param opts? table
function M.error(err, opts)
  return M.show(errors.format(err), errors.level(err.code), opts)
end

function M.info(msg, opts)
  return M.show(msg, vim.log.levels.INFO, opts)
end

function M.warn(msg, opts)
  return M.show(msg, vim.log.levels.WARN, opts)
end

return M
