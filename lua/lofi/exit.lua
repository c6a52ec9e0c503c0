--- Work to do when Neovim quits. Registering again replaces the earlier callback, so callers
--- may call this on every start without piling up autocmds.
local M = {}

---@param owner string   "daemon", "player", ...: one VimLeavePre callback each
---@param desc string
---@param fn fun()
function M.on_leave(owner, desc, fn)
  vim.api.nvim_create_autocmd("VimLeavePre", {
    group = vim.api.nvim_create_augroup("lofi." .. owner, { clear = true }),
    callback = fn,
    desc = desc,
  })
end

return M
