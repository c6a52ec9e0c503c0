--- Every message the plugin shows goes through here: one title, one formatter.
local errors = require("lofi.errors")

local M = {}

M.title = "lofi"

--- Show `msg` with vim.notify. `opts.replace` is a record returned earlier (nvim-notify,
--- snacks); `opts.id` lets notifiers that key on ids (snacks, mini) replace in place.
---@param msg string
---@param level? integer vim.log.levels
---@param opts? table
---@return any record whatever vim.notify returned (nil for the built-in one)
function M.show(msg, level, opts)
  opts = vim.tbl_extend("keep", opts or {}, { title = M.title })
  return vim.notify("lofi: " .. msg, level or vim.log.levels.INFO, opts)
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
